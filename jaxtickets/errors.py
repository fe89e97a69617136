"""Errors a user can fix, reported as one clear line naming the problem."""


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


class CheckpointError(RuntimeError):
    """A checkpoint or result file is missing, corrupt or does not fit the model."""
