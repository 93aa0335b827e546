"""The model types of hf-relrep in the transformers Auto classes, registered when this module is imported.

``"hf-relrep"`` (`RelativeEncoderConfig`: relative classifiers of text, images and audio) goes into `AutoConfig`,
`AutoModel` and the `AutoModelFor{Sequence,Image,Audio}Classification` classes; ``"hf-relrep-translated"``
(`TranslatedStitchConfig`: absolute classifiers stitched through a latent translation) into `AutoConfig` and
`AutoModelForSequenceClassification`. Saved models then load through the Auto classes without ``trust_remote_code``.
`hf_relrep.modeling` imports this module, so any use of the models registers them; ``import hf_relrep`` does too.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from ..configuration import RelativeEncoderConfig, TranslatedStitchConfig
from .audio_classification import RelativeModelForAudioClassification
from .encoder import RelativeModel
from .image_classification import RelativeModelForImageClassification
from .sequence_classification import RelativeModelForSequenceClassification
from .translated import TranslatedModelForSequenceClassification


def register_auto_classes() -> None:
    """Register the model types of hf-relrep with the transformers Auto classes; registering again changes nothing."""
    AutoConfig.register(RelativeEncoderConfig.model_type, RelativeEncoderConfig, exist_ok=True)
    AutoModel.register(RelativeEncoderConfig, RelativeModel, exist_ok=True)
    for auto_class, model_class in (
        (AutoModelForSequenceClassification, RelativeModelForSequenceClassification),
        (AutoModelForImageClassification, RelativeModelForImageClassification),
        (AutoModelForAudioClassification, RelativeModelForAudioClassification),
    ):
        auto_class.register(RelativeEncoderConfig, model_class, exist_ok=True)
    AutoConfig.register(TranslatedStitchConfig.model_type, TranslatedStitchConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(
        TranslatedStitchConfig, TranslatedModelForSequenceClassification, exist_ok=True
    )


register_auto_classes()

__all__ = ["register_auto_classes"]
