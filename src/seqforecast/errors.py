"""The project's own exceptions: one clear line for the person who made the mistake."""


class SeqforecastError(Exception):
    """Base class: scripts print its message on one line and exit non-zero."""


class ConfigError(SeqforecastError, ValueError):
    """A config key holds a value that is not allowed; the message names the key."""


class InputError(SeqforecastError, ValueError):
    """An input file, array or checkpoint is not what was expected."""


class NonFiniteLossError(SeqforecastError):
    """Training produced a NaN or infinite loss."""


class OutputError(SeqforecastError):
    """Writing a run's files failed (disk full, file-size limit, read-only or missing folder)."""
