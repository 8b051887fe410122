"""`rightsize evaluate` through click's runner: table, JSON, resume, and bad input."""

import json

import pytest
from click.testing import CliRunner

from rightsize.cli import cli
from rightsize.results import RunLog


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_evaluate_prints_a_table_and_appends_records(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    result = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--out", out, "--meter", "estimate", "--quiet")
    assert result.exit_code == 0, result.output
    for rung in ("tfidf", "tiny-knn", "tiny-probe"):
        assert rung in result.output
    assert "J/query" in result.output and "estimate" in result.output
    records = RunLog(out, create=False).records()
    assert [r.rung for r in records] == ["tfidf", "tiny-knn", "tiny-probe"]
    env = RunLog(out, create=False).environments()
    assert len(env) == 1 and env[0]["versions"]["torch"] and env[0]["run_id"] == records[0].run_id


def test_json_output_and_rerun_skips_recorded_configs(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    first = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", out, "--json")
    assert first.exit_code == 0, first.output
    record = json.loads(first.output.strip().splitlines()[-1])
    assert record["rung"] == "tfidf" and record["status"] == "ok"
    second = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", out, "--quiet")
    assert second.exit_code == 0 and "recorded earlier" in second.output
    assert len(RunLog(out, create=False).records()) == 1
    third = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", out, "--quiet", "--force")
    assert third.exit_code == 0
    assert len(RunLog(out, create=False).records()) == 2


def test_another_cpu_wattage_measures_again_and_another_sample_is_kept_apart(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    base = ("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", out, "--meter", "estimate",
            "--quiet")
    assert run(*base, "--cpu-watts", 5).exit_code == 0
    again = run(*base, "--cpu-watts", 10)
    assert again.exit_code == 0 and "recorded earlier" not in again.output
    assert "measured with estimate at 5 W per core; measuring it again with estimate at 10 W per core" in again.output
    records = RunLog(out, create=False).records()
    assert [r.cpu_watts_per_core for r in records] == [5.0, 10.0] and records[0].key == records[1].key
    # The estimate meter measures inference in repeated windows (energy_repeats): J/query has an interval and a CV.
    repeats = records[1].joules_per_query_repeats
    assert 2 <= repeats["repeats"] <= 5 and repeats["interval"][0] <= repeats["mean"] <= repeats["interval"][1]
    assert repeats["cv"] is not None and repeats["cv_met"] == (repeats["cv"] <= 0.05)
    assert "recorded earlier" in run(*base, "--cpu-watts", 10).output
    # A sample of the validation split is another evaluation: its own key, not compared with the rest.
    limited = run(*base, "--cpu-watts", 10, "--limit", 4)
    assert limited.exit_code == 0 and "recorded earlier" not in limited.output
    assert len({r.key for r in RunLog(out, create=False).records()}) == 2
    answer = run("recommend", out, "--no-confirm")
    assert "kept apart: 2 validation records of another task or sample" in answer.output, answer.output


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_task_file(tmp_path):
    assert_one_line_error(run("evaluate", tmp_path / "nope.yaml"), "nope.yaml")


def test_unknown_rung(tiny_task, tiny_ladder, tmp_path):
    assert_one_line_error(run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "gpt5"), "gpt5")


def test_model_missing_offline_is_caught_before_any_evaluation(tiny_task, tmp_path):
    ladder = tmp_path / "l.yaml"
    ladder.write_text("rungs:\n  - {name: t, kind: tfidf}\n  - {name: m, kind: probe, model: no-such-org/no-such-model}\n")
    out = tmp_path / "run"
    result = run("evaluate", tiny_task, "--ladder", ladder, "--out", out)
    assert_one_line_error(result, "no-such-org/no-such-model", "offline")
    assert not (out / "runs.jsonl").exists()  # nothing ran


def test_unwritable_output_folder(tiny_task, tiny_ladder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", blocker / "sub")
    assert_one_line_error(result, "not writable")


def test_pickled_weights_are_refused_unless_allowed(tiny_task, tmp_path, tiny_encoder):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_encoder, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    ladder = tmp_path / "l.yaml"
    ladder.write_text(f"rungs:\n  - {{name: m, kind: probe, model: '{folder}'}}\n")
    assert_one_line_error(run("evaluate", tiny_task, "--ladder", ladder, "--out", tmp_path / "o"), "pickled", "--allow-pickle")


def test_records_survive_a_torn_last_line(tiny_task, tiny_ladder, tmp_path):
    out = tmp_path / "run"
    assert run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf", "--out", out, "--quiet").exit_code == 0
    with open(out / "runs.jsonl", "a") as f:
        f.write('{"schema": "rightsize.record/1", "rung": "half-writ')  # a kill mid-write
    result = run("evaluate", tiny_task, "--ladder", tiny_ladder, "--rungs", "tfidf,tiny-knn", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    records = RunLog(out, create=False).records()
    assert [r.rung for r in records] == ["tfidf", "tiny-knn"]
    assert "half-writ" in (out / "runs.jsonl.torn").read_text()


def test_every_command_has_help_with_an_example():
    from rightsize.cli import cli as group

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    for path, cmd in walk(group, []):
        if path[-1] == "list":
            continue
        assert "Example" in (cmd.help or ""), f"rightsize {' '.join(path)} has no example in its help"


def test_evaluate_search_and_check_share_their_run_options():
    from rightsize.cli import cli

    check, evaluate, search = (cli.commands[name] for name in ("check", "evaluate", "search"))

    def options(command):  # each option as click describes it, less what a command may word or default its own way
        return {p.name: {k: v for k, v in p.to_info_dict().items() if k not in ("help", "default")}
                for p in command.params}

    ev, se, ch = options(evaluate), options(search), options(check)
    for name in ("ladder_path", "limit", "train_limit", "out_dir", "meter", "cpu_watts", "device", "seed"):
        assert ev[name] == se[name], name
    for name in ("ladder_path", "limit", "train_limit", "out_dir", "meter", "device"):
        assert ch[name] == ev[name], name
    # check's apply only to a task file: said in the help, and None by default so a run folder can refuse them.
    for p in check.params:
        if p.name in ("ladder_path", "limit", "train_limit", "out_dir", "meter", "device"):
            assert p.help.startswith("With a TASK: ") and p.to_info_dict()["default"] is None, p.name
    assert "cpu_watts" not in ch and "seed" not in ch
