"""User-facing errors: the CLI prints them as one line and exits with code 2 (no traceback)."""


class UserError(ValueError):
    """Bad input from the user (a file, a key, a tensor, an option); the message names it and what was expected."""


class ConfigError(UserError):
    """A config, or the metadata it came from, is invalid; the message says what was expected."""
