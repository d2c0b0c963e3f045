"""The classifier builders, chosen by `ModelSettings.architecture`. Every architecture maps token
ids [batch, length] (0 = padding) to class probabilities [batch, classes], so the input pipeline,
training loop, export and evaluation are the same for all of them."""

from typing import Callable, Dict, NamedTuple

import keras

from models import backbone, transformer
from models.settings import ModelSettings


class Architecture(NamedTuple):
  # (settings, vocabulary size, max sequence length, classes) -> the Keras model.
  build: Callable[[ModelSettings, int, int, int], keras.Model]
  # The model's token embedding matrix, which warm start copies by token.
  token_embeddings: Callable[[keras.Model], object]


ARCHITECTURES: Dict[str, Architecture] = {
    'pretrained': Architecture(backbone.build_classifier, backbone.token_embeddings),
    'transformer': Architecture(transformer.build_classifier, transformer.token_embeddings),
}


def build_classifier(settings: ModelSettings, vocabulary_size: int, max_seq_length: int,
                     num_classes: int) -> keras.Model:
  return ARCHITECTURES[settings.architecture].build(settings, vocabulary_size, max_seq_length,
                                                    num_classes)


def token_embeddings(model: keras.Model, settings: ModelSettings):
  return ARCHITECTURES[settings.architecture].token_embeddings(model)
