"""The package's error types: bad input is refused with one clear message, before any work."""


class SDDError(Exception):
    """Base class of every error keras_sdd raises on purpose."""


class ConfigError(SDDError, ValueError):
    """A setting, flag, file or dataset that cannot be used; the message names the valid choices or the fix."""
