"""Warm start: initialise a new model from the weights of a previous export (the last blessed
model, which the pipeline's resolver hands the Trainer as `base_model`).

Transform relearns the WordPiece vocabulary on every run, so token ids can change between models.
Token embedding rows are therefore copied by token, not by id: tokens both vocabularies share keep
what the base model learned, new tokens keep their fresh initialisation. Every other weight must
have the same shape in both models (the same architecture).
"""

import os
from typing import List

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the base model's serving graph uses TF Text ops)
from absl import logging

from models import data, features


def initialize_from_base_model(model: keras.Model, token_embeddings, base_model_dir: str,
                               vocabulary: List[str]) -> int:
  """Copies the trained weights of the SavedModel in `base_model_dir` (exported by
  `export.export_serving_model`) into `model`, whose token ids index `vocabulary` and whose
  token embedding matrix is the variable `token_embeddings`.

  Returns how many token embedding rows came from the base model.
  """
  base = tf.saved_model.load(base_model_dir)
  base_weights = [variable.numpy() for variable in base.trainable_variables]
  base_vocabulary = data.read_vocabulary(
      os.path.join(base_model_dir, 'assets', features.WORDPIECE_VOCABULARY_NAME))
  if len(base_weights) != len(model.trainable_variables):
    raise ValueError(
        f'Cannot warm-start from {base_model_dir}: it has {len(base_weights)} trained weights, '
        f'this model {len(model.trainable_variables)}. Warm start needs the same architecture '
        '(ModelSettings) as the base model.')

  copied_rows = 0
  for variable, base_value in zip(model.trainable_variables, base_weights, strict=True):
    if variable is token_embeddings:
      value, copied_rows = embeddings_by_token(variable.numpy(), vocabulary, base_value,
                                               base_vocabulary)
    elif tuple(variable.shape) == base_value.shape:
      value = base_value
    else:
      raise ValueError(
          f'Cannot warm-start {variable.path} {tuple(variable.shape)} from {base_model_dir}: '
          f'the base model has shape {base_value.shape}. Warm start needs the same architecture '
          '(ModelSettings) and max_seq_length as the base model.')
    variable.assign(value)
  logging.info('Warm-started from %s: %d of %d token embeddings carried over.', base_model_dir,
               copied_rows, len(vocabulary))
  return copied_rows


def embeddings_by_token(initial: np.ndarray, vocabulary: List[str], base: np.ndarray,
                        base_vocabulary: List[str]):
  """(`initial` with the rows of tokens in `base_vocabulary` taken from `base`, rows copied)."""
  if base.shape[0] != len(base_vocabulary) or base.shape[1:] != initial.shape[1:]:
    raise ValueError(f'Cannot warm-start token embeddings {initial.shape} from {base.shape} '
                     f'({len(base_vocabulary)} base tokens): the base embeddings must have one '
                     'row per base token and this model\'s width.')
  base_ids = {token: token_id for token_id, token in enumerate(base_vocabulary)}
  pairs = [(token_id, base_ids[token]) for token_id, token in enumerate(vocabulary)
           if token in base_ids]
  value = initial.copy()
  if pairs:
    ids, base_rows = map(list, zip(*pairs, strict=True))
    value[ids] = base[base_rows]
  return value, len(pairs)
