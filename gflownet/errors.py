"""The library's errors: each says what is wrong and names the culprit.

The CLI prints them as one line (no traceback) and exits with status 2.
"""


class GFlowNetError(Exception):
    """Base class of every error the library raises on bad input."""


class ConfigError(GFlowNetError, ValueError):
    """An unknown name, an out-of-range parameter or an unparsable value."""


class RewardError(GFlowNetError, ValueError):
    """A reward function returned NaN, an infinity, a negative value or a wrong shape."""


class CheckpointError(GFlowNetError):
    """A checkpoint is missing, truncated, corrupt or from another configuration."""
