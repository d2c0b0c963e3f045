"""Warm start from a previous export: same predictions from the same vocabulary, embeddings
carried over by token when Transform relearned the vocabulary, and a clear error for another
architecture."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models import classifier, data, features, warm_start
from tests.helpers import MAX_SEQ_LENGTH, TEXTS, TINY_MODEL


def base_token_embeddings(model_dir: str) -> np.ndarray:
  return tf.saved_model.load(model_dir).trainable_variables[0].numpy()


def test_warm_started_model_predicts_like_the_base_model(tiny_transform, tiny_model_dir):
  transformed, output = tiny_transform
  vocabulary = data.vocabulary(output)
  model = classifier.build_classifier(TINY_MODEL, len(vocabulary), MAX_SEQ_LENGTH, 2)
  copied = warm_start.initialize_from_base_model(
      model, classifier.token_embeddings(model, TINY_MODEL), tiny_model_dir, vocabulary)
  assert copied == len(vocabulary)

  token_ids = np.stack([row[features.TOKEN_IDS_KEY] for row in transformed[:len(TEXTS)]])
  probabilities = model({features.TOKEN_IDS_KEY: token_ids}, training=False)
  serve = tf.saved_model.load(tiny_model_dir).signatures[features.SERVING_SIGNATURE]
  expected = serve(text=tf.constant(TEXTS))[features.PROBABILITIES_KEY]
  np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_relearned_vocabulary_keeps_embeddings_by_token(tiny_transform, tiny_model_dir):
  _, output = tiny_transform
  base_vocabulary = data.vocabulary(output)
  # Another run's vocabulary: the same tokens in another order, one token gone, one new.
  vocabulary = [base_vocabulary[0]] + base_vocabulary[:1:-1] + ['##newtoken']
  model = classifier.build_classifier(TINY_MODEL, len(vocabulary), MAX_SEQ_LENGTH, 2)
  embeddings = classifier.token_embeddings(model, TINY_MODEL)
  initial = embeddings.numpy()

  copied = warm_start.initialize_from_base_model(
      model, classifier.token_embeddings(model, TINY_MODEL), tiny_model_dir, vocabulary)

  assert copied == len(vocabulary) - 1
  base = base_token_embeddings(tiny_model_dir)
  warm = embeddings.numpy()
  for token_id, token in enumerate(vocabulary[:-1]):
    np.testing.assert_array_equal(warm[token_id], base[base_vocabulary.index(token)])
  np.testing.assert_array_equal(warm[-1], initial[-1])  # a new token keeps its initialisation


def test_another_architecture_is_a_clear_error(tiny_transform, tiny_model_dir):
  _, output = tiny_transform
  vocabulary = data.vocabulary(output)
  wider = dataclasses.replace(TINY_MODEL, intermediate_dim=64)
  model = classifier.build_classifier(wider, len(vocabulary), MAX_SEQ_LENGTH, 2)
  with pytest.raises(ValueError, match='same architecture'):
    warm_start.initialize_from_base_model(
      model, classifier.token_embeddings(model, TINY_MODEL), tiny_model_dir, vocabulary)
