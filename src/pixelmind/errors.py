"""Errors a user can fix: bad usage, config or data. The CLI prints them as one line, exit code 2."""

from __future__ import annotations


class PixelmindError(Exception):
    """A problem with what the user gave us (config, data, weights); shown as one line."""


class ConfigError(PixelmindError):
    """A config key or value is wrong."""


class DataError(PixelmindError):
    """A data set, label file or image cannot be used."""


class WeightsError(PixelmindError):
    """A weights file is missing, corrupt or made for something else."""


class BitstreamError(PixelmindError):
    """A compressed file is truncated, corrupt or made for other weights."""
