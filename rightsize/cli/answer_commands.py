"""The commands that answer from a run folder: recommend, report, export (a config as a folder) and
predict (label texts with an exported folder)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rightsize import terminal
from rightsize.cli.app import cli
from rightsize.cli.options import MEASURE_LARGEST, deployment_options, safety_options
from rightsize.errors import RightsizeError


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the recommendation as JSON.")
@deployment_options
@click.option("--no-confirm", is_flag=True, help="Do not evaluate the choice and the largest config on the test split.")
@MEASURE_LARGEST
@safety_options
@click.pass_context
def recommend(ctx, run_dir, as_json, objective, queries_per_day, days, adjust, where, region, no_confirm, measure_largest,
              trust_remote_code, allow_pickle):
    """Recommend the smallest adequate config of a run (chosen on validation, confirmed on test).

    Adequate means: the 95% bootstrap CI lower bound clears target min, or (target within d) the
    config is non-inferior to the best config by d (paired bootstrap). The choice is the adequate
    config with the least J/query (--objective lifetime: the least fit + lifetime queries x J/query),
    shown next to the largest config evaluated, with the break-even volume against each adequate config
    that costs less to make. The test split then confirms the choice unless it shows, at 95%, that the
    choice misses the target (docs/adequacy.md). Exit codes: 0 an adequate config, certain; 1 nothing
    adequate (or every evaluation pruned or failed), or the test split does not confirm the choice
    (this takes precedence over 3); 3 an answer that is not certain: rungs that set a `within`
    target's bar were not evaluated.

    \b
    Example:
      rightsize recommend results/trec6 --queries-per-day 50000 --days 730 --pue 1.3 --region de
    """
    from rightsize.recommend import NothingCompleted, recommend as choose
    from rightsize.results import RunLog

    run_log = RunLog(run_dir, create=False)
    options = dict(queries_per_day=queries_per_day, days=days, where=where, region=region, plans=run_log.plans(),
                   objective=objective, adjust=adjust)
    try:
        rec = choose(run_log.records(), **options)
    except NothingCompleted as exc:
        click.echo(json.dumps({"schema": "rightsize.recommendation/1", "adequate": False, "certain": None,
                               "chosen": None, "tried": exc.tried}, indent=2, ensure_ascii=False)
                   if as_json else terminal.tried_text(exc.tried))
        ctx.exit(EXIT_NOT_ADEQUATE)
    confirmations = None
    announce = None if as_json else (lambda name: click.echo(f"evaluating {name} on the test split", err=True))
    if rec.adequate and not no_confirm:
        from rightsize.confirm import confirm_on_test

        confirmations = confirm_on_test(run_dir, [rec.chosen["key"], rec.largest["key"]], allow_pickle=allow_pickle,
                                        trust_remote_code=trust_remote_code, on_start=announce)
        rec = choose(run_log.records(), **options)
    if measure_largest and rec.adequate:
        from rightsize.confirm import measure_largest as measure

        confirmations = (confirmations or []) + measure(run_dir, rec, allow_pickle=allow_pickle,
                                                        trust_remote_code=trust_remote_code, on_start=announce)
        rec = choose(run_log.records(), **options)
    if as_json:
        confirmed = None if confirmations is None else [
            {"rung": c.rung, "status": c.status, "detail": c.detail} for c in confirmations]
        click.echo(json.dumps({**rec.to_dict(), "confirmation": confirmed}, indent=2, ensure_ascii=False))
    else:
        click.echo(terminal.recommendation_text(rec, confirmations, no_confirm))
    ctx.exit(_answer_exit_code(rec))


EXIT_NOT_ADEQUATE = 1  # nothing adequate, no complete evaluation to choose from, or not confirmed on test
EXIT_UNCERTAIN = 3  # an answer, but the configs that set its bar were not all evaluated


def _answer_exit_code(rec) -> int:
    """1 before 3: an answer the test split contradicts is wrong, not merely uncertain."""
    if not rec.adequate or rec.confirmed is False:
        return EXIT_NOT_ADEQUATE
    return 0 if rec.certain else EXIT_UNCERTAIN


# ---------------------------------------------------------------- report


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Folder for the files (default: RUN_DIR).")
@click.option("--format", "formats", default="png,svg", show_default=True, help="Plot formats, comma-separated (png, svg).")
@click.option("--x", "x_axis", type=click.Choice(["per-query", "lifetime"]),
              help="The plot's energy axis: J/query, or lifetime energy (fit + queries/day x days x J/query) "
                   "[default: as --objective].")
@deployment_options
@MEASURE_LARGEST
@safety_options
@click.pass_context
def report(ctx, run_dir, out_dir, formats, x_axis, objective, queries_per_day, days, adjust, where, region,
           measure_largest, trust_remote_code, allow_pickle):
    """Write pareto.png/.svg, report.md and a self-contained report.html from a run's runs.jsonl.

    The plot shows validation metric against J/query (log axis) for every config with its 95%
    interval, the Pareto front, the target, and the recommended and largest configs labelled.
    The report gives the recommendation and the rule that made it adequate, every config with
    its phases, the saving against the largest config, lifetime energy and carbon with their
    assumptions, and the environment measured on.

    \b
    Example:
      rightsize report results/banking77 --region de --queries-per-day 50000
    """
    from rightsize.report import build_report, summary_lines

    if measure_largest:
        from rightsize.confirm import measure_largest as measure
        from rightsize.recommend import NothingCompleted, recommend as choose
        from rightsize.results import RunLog

        run_log = RunLog(run_dir, create=False)
        try:
            rec = choose(run_log.records(), plans=run_log.plans(), objective=objective)
        except NothingCompleted:
            rec = None
        if rec is not None and rec.adequate:
            measure(run_dir, rec, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                    on_start=lambda name: click.echo(f"evaluating {name} on the test split", err=True))
    files = build_report(run_dir, out_dir, queries_per_day=queries_per_day, days=days, where=where, region=region,
                         formats=[f.strip() for f in formats.split(",") if f.strip()], objective=objective,
                         x_axis=x_axis or objective, adjust=adjust)
    for line in summary_lines(files):
        click.echo(line)
    if files.recommendation is None:
        ctx.exit(EXIT_NOT_ADEQUATE)  # the report lists what was tried and why each one stopped


# ---------------------------------------------------------------- check


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("config", required=False)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write (must not exist, or be empty).")
@click.option("--models", "models_mode", type=click.Choice(["copy", "reference"]), default="copy", show_default=True,
              help="Copy the files of each model the config loads into the folder, or reference models by id "
                   "(a smaller folder; the ids must resolve where it is used).")
def export(run_dir, config, out_dir, models_mode):
    """Write a self-contained folder that labels texts with a config of a run.

    CONFIG is a rung name, a config as recommend names it (e.g. 'tfidf (C=1)') or a record key; without
    it, the run's recommendation. The folder holds the fitted state, the config, the label names, the
    models it loads and a README.txt; `rightsize predict` serves it without the run folder.

    \b
    Example:
      rightsize export results/trec6 --out trec6-model
      rightsize export results/trec6 minilm-probe --out minilm-probe --models reference
    """
    from rightsize.export import export_config

    click.echo(terminal.export_text(export_config(run_dir, out_dir, config, models=models_mode)))


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the predictions (JSON lines) to this file instead of stdout.")
@click.option("--text-field", default="text", show_default=True, help="The texts' field (JSONL) or column (CSV).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Device [default: the one the config was evaluated on where available, else cpu].")
@safety_options
def predict(folder, input_file, out_file, text_field, device, trust_remote_code, allow_pickle):
    """Label the texts of INPUT with an exported config: one JSON line {"index", "label"} per text.

    INPUT is a text file (one text per line), JSONL or CSV (by extension) with a text field. Every file of
    the export folder is checked against its sha256 first.

    \b
    Example:
      rightsize predict trec6-model questions.txt --out predictions.jsonl
    """
    from rightsize.export import load_export
    from rightsize.tasks import read_texts

    texts = read_texts(input_file, text_field)
    model = load_export(folder, device=device, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    try:
        labels = model.predict(texts)
    finally:
        model.close()
    lines = "".join(json.dumps({"index": i, "label": label}, ensure_ascii=False) + "\n"
                    for i, label in enumerate(labels))
    if out_file is None:
        click.echo(lines, nl=False)
        return
    try:
        out_file.write_text(lines, encoding="utf-8")
    except OSError as exc:
        raise RightsizeError(f"--out {out_file}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {len(labels)} predictions to {out_file}", err=True)


# ---------------------------------------------------------------- cache
