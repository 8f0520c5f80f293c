"""The small exception hierarchy every stage raises for errors a user can cause."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline reports to a user (the CLI prints it plainly)."""


class ParameterError(PipelineError, ValueError):
    """A parameter or option has a value outside what it accepts."""


class DataFormatError(PipelineError, ValueError):
    """An input file (annotations, clip info, split file, audio) is malformed.

    The message names the file and, where known, the line and column.
    """


class AudioDecodeError(PipelineError):
    """An audio file is empty, truncated, silent or not audio at all."""


class DownloadError(PipelineError):
    """A download failed: offline, a bad HTTP answer, or a size / checksum mismatch."""


class RunDirError(PipelineError):
    """A run directory is missing, partial, or of an unknown schema version."""
