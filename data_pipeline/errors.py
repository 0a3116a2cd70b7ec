"""The one error type for bad user input (files, fields, flags)."""


class UserError(Exception):
    """A mistake the user can fix: the CLI prints it as one line and exits non-zero.

    The message names the file, field, flag or sample and what was expected.
    """
