"""The command line: thin click commands over the library (parse, call, print, exit).

app holds the ``rightsize`` group; the commands are grouped by what they do (run_commands: evaluate,
search, check; answer_commands: recommend, report, export, predict; setup_commands: tasks, models,
cache); options holds the options several commands share. What they print is composed in
rightsize.terminal.
"""

from rightsize.cli import answer_commands, run_commands, setup_commands  # noqa: F401 - registers the commands
from rightsize.cli.app import cli, main

__all__ = ["cli", "main"]
