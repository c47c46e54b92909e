"""Exception types shared by every dfmvr package.

Every error raised for bad input names what is wrong and what was expected, so that a user reading a log
line can fix the input without reading code. All of them derive from :class:`DfmvrError`; the ones about
values also derive from :class:`ValueError` so generic handlers keep working.
"""


class DfmvrError(Exception):
    """Base class of every error dfmvr raises on purpose."""


class ShapeError(DfmvrError, ValueError):
    """A tensor or array has the wrong shape, dtype or contains non-finite values."""


class ModelFileError(DfmvrError, ValueError):
    """A model file (morphable model, checkpoint, engine) is missing, truncated, of the wrong layout or
    holds invalid values. The message names the file."""


class ConfigError(DfmvrError, ValueError):
    """A configuration value is invalid. The message names the field (dotted path) and what is expected."""
