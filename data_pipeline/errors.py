"""The one error type for bad user input (files, fields, settings)."""


class UserError(Exception):
    """A mistake the user can fix: the CLI prints it as one line and exits non-zero.

    The message names the file, field, setting or sample and what was expected.
    An error about a setting carries its configuration `key` (e.g. "head") and the
    `value` given: it reads `head 'mlp': expected ...` from Python, and the CLI
    names its own flag instead (`--head mlp: expected ...`).
    """

    def __init__(self, message: str, key: str = None, value=None):
        super().__init__(message)
        self.message, self.key, self.value = message, key, value

    def describe(self, name: str = None) -> str:
        """The one line, the setting called `name` (default: its key)."""
        if self.key is None:
            return self.message
        if name is None:
            value = repr(self.value) if isinstance(self.value, str) else self.value
            return f"{self.key} {value}: {self.message}"
        return f"{name} {self.value}: {self.message}"

    def __str__(self):
        return self.describe()
