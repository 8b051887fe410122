"""The ``rightsize`` click group: logging, quiet libraries, and bad input turned into one line and exit 2."""

from __future__ import annotations

import logging
import os
import sys

import click

from rightsize.errors import RightsizeError

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



def main() -> None:
    cli(prog_name="rightsize")
