"""The Keras model: builds and trains under the configured strategy, exports a raw-text
SavedModel whose graph holds only core TF and TF Text ops."""

import dataclasses
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import features, model as model_lib, strategy as strategy_lib
from tests.conftest import LABELS, MAX_SEQ_LENGTH, TEXTS, TINY_MODEL


def test_model_outputs_class_probabilities():
  model = model_lib.build_model(50, MAX_SEQ_LENGTH, num_classes=3, settings=TINY_MODEL)
  probabilities = model({features.TOKEN_IDS_KEY: np.ones((4, MAX_SEQ_LENGTH), 'int64')})
  assert probabilities.shape == (4, 3)
  np.testing.assert_allclose(keras.ops.sum(probabilities, axis=-1), np.ones(4), rtol=1e-5)


@pytest.mark.parametrize('pooling', ['mean', 'max', 'mean_max'])
def test_padding_does_not_change_predictions(pooling):
  # Batches are padded to their longest member, so a text's padding varies from batch to batch.
  settings = dataclasses.replace(TINY_MODEL, pooling=pooling)
  model = model_lib.build_model(50, MAX_SEQ_LENGTH, num_classes=2, settings=settings)
  short = model({features.TOKEN_IDS_KEY: np.array([[5, 6, 7]], 'int64')})
  padded = model({features.TOKEN_IDS_KEY: np.array([[5, 6, 7, 0, 0, 0]], 'int64')})
  np.testing.assert_allclose(short, padded, atol=1e-6)


def test_label_smoothing_moves_targets_towards_uniform():
  probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], 'float32')
  labels = np.array([0, 1])
  plain = model_lib.SparseCrossentropy()(labels, probabilities)
  np.testing.assert_allclose(plain, -np.mean(np.log([0.9, 0.8])), rtol=1e-5)
  # Smoothing 0.2 over 2 classes: targets 0.9 / 0.1.
  smoothed = model_lib.SparseCrossentropy(label_smoothing=0.2)(labels, probabilities)
  expected = -np.mean([0.9 * np.log(0.9) + 0.1 * np.log(0.1),
                       0.1 * np.log(0.2) + 0.9 * np.log(0.8)])
  np.testing.assert_allclose(smoothed, expected, rtol=1e-5)


def test_balanced_class_weights_make_every_class_weigh_the_same():
  labels = tf.constant([0] * 6 + [1] * 3 + [2] * 1, tf.int64)
  dataset = tf.data.Dataset.from_tensor_slices(
      ({features.TOKEN_IDS_KEY: tf.ones([10, 3], tf.int64)}, labels)).batch(4)
  weights = model_lib.balanced_class_weights(dataset, num_classes=4)
  assert weights == pytest.approx({0: 10 / 24, 1: 10 / 12, 2: 10 / 4, 3: 1.0})


def test_holdout_share_is_disjoint_from_the_rest_and_stable():
  token_ids = tf.constant([[i + 2, i % 7 + 2, 0] for i in range(1000)], tf.int64)
  batch = ({features.TOKEN_IDS_KEY: token_ids}, tf.range(1000, dtype=tf.int64))
  held_out = set(model_lib.keep_share(*batch, percent=10, held_out=True)[1].numpy())
  rest = set(model_lib.keep_share(*batch, percent=10, held_out=False)[1].numpy())
  assert held_out.isdisjoint(rest) and len(held_out | rest) == 1000
  assert 50 <= len(held_out) <= 150
  assert set(model_lib.keep_share(*batch, percent=10, held_out=True)[1].numpy()) == held_out


def test_serving_default_takes_raw_text(tiny_model_dir):
  loaded = tf.saved_model.load(tiny_model_dir)
  outputs = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
  assert outputs[features.PROBABILITIES_KEY].dtype == tf.float32
  assert outputs[features.PROBABILITIES_KEY].shape == (len(TEXTS), 2)
  predicted = [label.decode() for label in outputs[features.PREDICTED_LABEL_KEY].numpy()]
  assert set(predicted) <= {'neg', 'pos'}
  # The tiny model has learned its tiny training set.
  assert sum(p == l for p, l in zip(predicted, LABELS)) >= 4


def test_tf_example_signatures_agree_with_raw_text(tiny_model_dir):
  loaded = tf.saved_model.load(tiny_model_dir)
  examples = [tf.train.Example(features=tf.train.Features(feature={
      features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()])),
      features.LABEL_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[l.encode()])),
  })).SerializeToString() for t, l in zip(TEXTS, LABELS)]
  by_example = loaded.signatures[features.TF_EXAMPLE_SIGNATURE](examples=tf.constant(examples))
  by_text = loaded.signatures[features.SERVING_SIGNATURE](text=tf.constant(TEXTS))
  np.testing.assert_allclose(by_example[features.PROBABILITIES_KEY],
                             by_text[features.PROBABILITIES_KEY], rtol=1e-5)
  transformed = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant(examples))
  assert transformed[features.LABEL_ID_KEY].numpy().tolist() == [1, 0, 1, 0, 1, 0]


# Splits the ops of a SavedModel into core TF ops, TF Text ops and anything else ('FOREIGN').
CLASSIFY_OPS = '''
import sys
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
saved_model = saved_model_pb2.SavedModel()
with open(sys.argv[1] + '/saved_model.pb', 'rb') as f:
  saved_model.ParseFromString(f.read())
graph = saved_model.meta_graphs[0].graph_def
used = {node.op for node in graph.node}
used |= {node.op for fn in graph.library.function for node in fn.node_def}
used -= {fn.signature.name for fn in graph.library.function}  # calls of graph functions
import tensorflow
not_core = {op for op in used if op_def_registry.get(op) is None}
import tensorflow_text
foreign = {op for op in not_core if op_def_registry.get(op) is None}
print('FOREIGN', sorted(foreign))
print('TEXT', sorted(not_core - foreign))
'''


def test_serving_graph_uses_only_core_tf_and_tf_text_ops(tiny_model_dir):
  result = subprocess.run([sys.executable, '-c', CLASSIFY_OPS, tiny_model_dir],
                          capture_output=True, text=True, check=True)
  lines = dict(line.split(' ', 1) for line in result.stdout.splitlines()
               if line.startswith(('FOREIGN', 'TEXT')))
  assert lines['FOREIGN'] == '[]'
  assert 'WordpieceTokenizeWithOffsets' in lines['TEXT']  # the tokenizer is inside the model


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
