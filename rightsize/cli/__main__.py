"""``python -m rightsize.cli``: the same as the ``rightsize`` command."""

from rightsize.cli import main

main()
