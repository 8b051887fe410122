"""One exception type for problems the user can fix (bad input, missing files, models not found).

The CLI turns it into a single line on stderr and exit code 2; everything else is a bug or a
runtime failure and is handled where it happens (a failing rung is recorded, not raised).
"""


class RightsizeError(Exception):
    """A user-facing error: the message names the file, field or value at fault."""
