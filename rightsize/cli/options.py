"""Options shared by several commands, defined once (in the style of sqlite-utils' output_options),
and the helpers the run commands share: TASK as a task file or an assumed one, progress lines."""

from __future__ import annotations

from pathlib import Path

import click

from rightsize import terminal
from rightsize.errors import RightsizeError


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


def announce(index: int, total: int, spec, cached: bool) -> None:
    """The progress line of a rung starting (or found recorded), on stderr."""
    click.echo(terminal.progress_line(index, total, spec, cached), err=True)


MEASURE_LARGEST = click.option(
    "--measure-largest", is_flag=True,
    help="Evaluate the ladder's largest rung on the test split when the run never measured it, so the saving "
         "against it is measured rather than the cost model's estimate.")
