"""The Keras model: builds and trains under the configured strategy, exports a raw-text
SavedModel whose graph holds only core TF and TF Text ops."""

import dataclasses
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import (classifier, data, export, features, optimization, strategy as strategy_lib,
                    trainer)
from models.settings import TrainingSettings
from tests.helpers import LABELS, MAX_SEQ_LENGTH, TEXTS, TINY_MODEL, serving_graph_ops


def test_model_outputs_class_probabilities():
  model = classifier.build_classifier(TINY_MODEL, 50, MAX_SEQ_LENGTH, num_classes=3)
  probabilities = model({features.TOKEN_IDS_KEY: np.ones((4, MAX_SEQ_LENGTH), 'int64')})
  assert probabilities.shape == (4, 3)
  np.testing.assert_allclose(keras.ops.sum(probabilities, axis=-1), np.ones(4), rtol=1e-5)


@pytest.mark.parametrize('pooling', ['mean', 'max', 'mean_max'])
def test_padding_does_not_change_predictions(pooling):
  # Batches are padded to their longest member, so a text's padding varies from batch to batch.
  settings = dataclasses.replace(TINY_MODEL, pooling=pooling)
  model = classifier.build_classifier(settings, 50, MAX_SEQ_LENGTH, num_classes=2)
  short = model({features.TOKEN_IDS_KEY: np.array([[5, 6, 7]], 'int64')})
  padded = model({features.TOKEN_IDS_KEY: np.array([[5, 6, 7, 0, 0, 0]], 'int64')})
  np.testing.assert_allclose(short, padded, atol=1e-6)


def test_label_smoothing_moves_targets_towards_uniform():
  probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], 'float32')
  labels = np.array([0, 1])
  plain = optimization.SparseCrossentropy()(labels, probabilities)
  np.testing.assert_allclose(plain, -np.mean(np.log([0.9, 0.8])), rtol=1e-5)
  # Smoothing 0.2 over 2 classes: targets 0.9 / 0.1.
  smoothed = optimization.SparseCrossentropy(label_smoothing=0.2)(labels, probabilities)
  expected = -np.mean([0.9 * np.log(0.9) + 0.1 * np.log(0.1),
                       0.1 * np.log(0.2) + 0.9 * np.log(0.8)])
  np.testing.assert_allclose(smoothed, expected, rtol=1e-5)


def test_balanced_class_weights_make_every_class_weigh_the_same():
  labels = tf.constant([0] * 6 + [1] * 3 + [2] * 1, tf.int64)
  dataset = tf.data.Dataset.from_tensor_slices(
      ({features.TOKEN_IDS_KEY: tf.ones([10, 3], tf.int64)}, labels)).batch(4)
  weights = data.balanced_class_weights(dataset, num_classes=4)
  assert weights == pytest.approx({0: 10 / 24, 1: 10 / 12, 2: 10 / 4, 3: 1.0})


def test_holdout_share_is_disjoint_from_the_rest_and_stable():
  token_ids = tf.constant([[i + 2, i % 7 + 2, 0] for i in range(1000)], tf.int64)
  batch = ({features.TOKEN_IDS_KEY: token_ids}, tf.range(1000, dtype=tf.int64))
  held_out = set(data.keep_share(*batch, percent=10, held_out=True)[1].numpy())
  rest = set(data.keep_share(*batch, percent=10, held_out=False)[1].numpy())
  assert held_out.isdisjoint(rest) and len(held_out | rest) == 1000
  assert 50 <= len(held_out) <= 150
  assert set(data.keep_share(*batch, percent=10, held_out=True)[1].numpy()) == held_out


def test_serving_default_takes_raw_text(tiny_model_dir):
  loaded = tf.saved_model.load(tiny_model_dir)
  outputs = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
  assert outputs[features.PROBABILITIES_KEY].dtype == tf.float32
  assert outputs[features.PROBABILITIES_KEY].shape == (len(TEXTS), 2)
  predicted = [label.decode() for label in outputs[features.PREDICTED_LABEL_KEY].numpy()]
  assert set(predicted) <= {'neg', 'pos'}
  # The tiny model has learned its tiny training set.
  assert sum(p == label for p, label in zip(predicted, LABELS, strict=True)) >= 4


def test_tf_example_signatures_agree_with_raw_text(tiny_model_dir):
  loaded = tf.saved_model.load(tiny_model_dir)
  examples = [tf.train.Example(features=tf.train.Features(feature={
      features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()])),
      features.LABEL_KEY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[label.encode()])),
  })).SerializeToString() for t, label in zip(TEXTS, LABELS, strict=True)]
  by_example = loaded.signatures[features.TF_EXAMPLE_SIGNATURE](examples=tf.constant(examples))
  by_text = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
  np.testing.assert_allclose(by_example[features.PROBABILITIES_KEY],
                             by_text[features.PROBABILITIES_KEY], rtol=1e-5)
  transformed = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant(examples))
  assert transformed[features.LABEL_ID_KEY].numpy().tolist() == [1, 0, 1, 0, 1, 0]


def test_serving_graph_uses_only_core_tf_and_tf_text_ops(tiny_model_dir):
  foreign, text_ops = serving_graph_ops(tiny_model_dir)
  assert foreign == []
  assert 'WordpieceTokenizeWithOffsets' in text_ops  # the tokenizer is inside the model


@pytest.mark.parametrize('name, kwargs, expected', [
    ('auto', {}, 'default'),
    ('auto', {'num_gpus': 1}, 'default'),
    ('auto', {'num_gpus': 4}, 'mirrored'),
    ('auto', {'tpu_address': 'grpc://10.0.0.2:8470', 'num_gpus': 4}, 'tpu'),
    ('auto', {'tf_config': '{"cluster": {"worker": ["a:1", "b:1"]}, '
                           '"task": {"type": "worker", "index": 0}}'}, 'multi_worker'),
    ('mirrored', {}, 'mirrored'),
    ('tpu', {}, 'tpu'),
])
def test_strategy_selection(name, kwargs, expected):
  assert strategy_lib.resolve_strategy_name(name, **kwargs) == expected


def test_unknown_strategy_is_a_clear_error():
  with pytest.raises(ValueError, match='Unknown distribution strategy'):
    strategy_lib.resolve_strategy_name('gpu')


@pytest.mark.parametrize('training, expected', [
    (TrainingSettings(epochs=3, max_steps=0, steps_per_evaluation=0), (100, 3)),
    (TrainingSettings(epochs=3, max_steps=150, steps_per_evaluation=50), (50, 3)),
    (TrainingSettings(epochs=1, max_steps=1000, steps_per_evaluation=40), (40, 2)),  # epoch caps
    (TrainingSettings(epochs=2, max_steps=130, steps_per_evaluation=50), (50, 2)),  # whole rounds
    (TrainingSettings(epochs=2, max_steps=30, steps_per_evaluation=50), (30, 1)),
])
def test_evaluation_rounds_keep_to_the_epochs_and_the_step_budget(training, expected):
  assert trainer.evaluation_rounds(100, training) == expected


def test_the_room_checked_before_training_holds_the_export(tiny_model_dir, tiny_transform):
  _, output = tiny_transform
  model = classifier.build_classifier(TINY_MODEL, len(data.vocabulary(output)), MAX_SEQ_LENGTH,
                                      num_classes=2)
  exported = sum(f.stat().st_size for f in pathlib.Path(tiny_model_dir).rglob('*') if f.is_file())
  assert exported <= export.export_bytes_needed(model)


def test_the_export_stores_each_weight_once_and_serves_the_model(tiny_transform, tmp_path):
  _, output = tiny_transform
  model = classifier.build_classifier(TINY_MODEL, len(data.vocabulary(output)), MAX_SEQ_LENGTH,
                                      num_classes=2)
  export_dir = str(tmp_path / 'export')
  export.export_serving_model(model, output, data.label_names(output), export_dir)
  reader = tf.train.load_checkpoint(os.path.join(export_dir, 'variables', 'variables'))
  stored = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != '_CHECKPOINTABLE_OBJECT_GRAPH']
  transform_layer = output.transform_features_layer()
  assert not transform_layer.variables  # a WordPiece tokenizer: tables, no variables
  assert len(stored) == len(model.variables)
  assert sum(value.nbytes for value in stored) == sum(
      np.asarray(variable).nbytes for variable in model.variables)

  # The endpoints compute what the model does, and the loaded export still offers the weights
  # in the model's order (warm start and distillation read them).
  loaded = tf.saved_model.load(export_dir)
  served = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
  token_ids = transform_layer({features.TEXT_KEY: tf.constant(TEXTS)})[features.TOKEN_IDS_KEY]
  np.testing.assert_allclose(served[features.PROBABILITIES_KEY],
                             model({features.TOKEN_IDS_KEY: token_ids}, training=False),
                             atol=1e-6)
  assert len(loaded.variables) == len(model.variables)
  for restored, variable in zip(loaded.trainable_variables, model.trainable_variables,
                                strict=True):
    np.testing.assert_array_equal(restored.numpy(), variable.numpy())


def test_too_little_room_for_the_export_stops_before_training(tmp_path):
  export_dir = str(tmp_path / 'not' / 'yet' / 'serving')  # checked where it will be created
  with pytest.raises(export.NoRoomError, match=f'{tmp_path} has .* MB free'):
    export.check_room(export_dir, shutil.disk_usage(tmp_path).free + 10**12)
  export.check_room(export_dir, 1)
  export.check_room('gs://bucket/serving', 10**18)  # object stores are not checked
