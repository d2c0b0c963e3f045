"""What several test modules share: slices of the bundled data, small settings, the tiny corpus,
and readers of what a Trainer wrote. Fixtures built from these are in conftest.py."""

import ast
import dataclasses
import os
import pathlib
import subprocess
import sys
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from models import features
from models.settings import (IngestionSettings, ModelSettings, PreprocessingSettings,
                             TrainingSettings, resolve_training)
from pipeline.config import PipelineConfig

SST2_DIR = os.environ.get('TEXT_CLASSIFIER_DATA_ROOT', IngestionSettings().data_root)

# A tiny labelled corpus for Transform and model tests, and the model trained on it.
MAX_SEQ_LENGTH = 12
TINY_MODEL = ModelSettings(architecture='transformer', embedding_dim=16, num_layers=1, num_heads=2,
                           intermediate_dim=32)
TINY_TRAINING = resolve_training(TINY_MODEL, TrainingSettings(learning_rate=5e-3))
TEXTS = ['a great movie', 'a terrible , boring movie', 'great great fun', 'boring and terrible',
         'the movie was fun', 'a boring story']
LABELS = ['pos', 'neg', 'pos', 'neg', 'pos', 'neg']
SPLITS = ('train', 'eval')
# What a re-run with unchanged data and settings serves from cache.
CACHED_ON_RERUN = ('TextCleaningExampleGen', 'StatisticsGen', 'DescribedSchemaGen',
                   'ExampleValidator', 'DataGate', 'Transform', 'Trainer')


def write_slice(source: str, destination: str, rows: int) -> None:
  """The header and the first `rows` rows of a bundled TSV file."""
  with open(source, encoding='utf-8') as src, open(destination, 'w', encoding='utf-8') as dst:
    for line_number, line in enumerate(src):
      if line_number > rows:
        break
      dst.write(line)


def small_config(data_root: str, output_root: str) -> PipelineConfig:
  """A pipeline that runs in about a minute: the from-scratch model, small, one epoch, no floor."""
  config = PipelineConfig(
      output_dir=os.path.join(output_root, 'tfx_output'),
      serving_model_dir=os.path.join(output_root, 'serving_model'),
      preprocessing=PreprocessingSettings(vocab_size=2000, max_seq_length=32),
      model=ModelSettings(architecture='transformer', embedding_dim=32, num_layers=1, num_heads=2,
                          intermediate_dim=64),
      training=TrainingSettings(epochs=1, batch_size=32))
  return dataclasses.replace(
      config,
      ingestion=dataclasses.replace(config.ingestion, data_root=data_root,
                                    label_display_names=('negative', 'positive')),
      evaluation=dataclasses.replace(config.evaluation, accuracy_lower_bound=0.0,
                                     accuracy_regression_tolerance=1.0))


def write_transformed_examples(rows: Iterable[Mapping[str, np.ndarray]], examples_dir: str) -> None:
  """Transformed rows as gzipped tf.Example files in Transform's layout (both splits get them)."""
  examples = [tf.train.Example(features=tf.train.Features(feature={
      features.TOKEN_IDS_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=row[features.TOKEN_IDS_KEY])),
      features.LABEL_ID_KEY: tf.train.Feature(
          int64_list=tf.train.Int64List(value=[row[features.LABEL_ID_KEY]])),
      features.LENGTH_BUCKET_KEY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[row[features.LENGTH_BUCKET_KEY]])),
  })).SerializeToString() for row in rows]
  for split in SPLITS:
    os.makedirs(os.path.join(examples_dir, f'Split-{split}'))
    path = os.path.join(examples_dir, f'Split-{split}', 'transformed_examples-00000-of-00001.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
      for example in examples:
        writer.write(example)


def read_run(run_dir: str) -> event_accumulator.EventAccumulator:
  """Every summary of one TensorBoard run (a directory of event files)."""
  run = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.TENSORS: 0})
  run.Reload()
  return run


def read_hparams(log_dir: str) -> dict:
  """The hyperparameters a run recorded for TensorBoard's HParams dashboard."""
  content = read_run(log_dir).SummaryMetadata('_hparams_/session_start_info').plugin_data.content
  hparams = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
  return {name: getattr(value, value.WhichOneof('kind')) for name, value in hparams.items()}


def open_store(config) -> metadata_store.MetadataStore:
  return metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path))


def latest_executions(config):
  """Node id -> its newest execution, from the run's ml-metadata store."""
  store = open_store(config)
  latest = {}
  for context in store.get_contexts_by_type('node'):
    node_id = context.name.split('.', 1)[1]
    executions = store.get_executions_by_context(context.id)
    if executions:
      latest[node_id] = max(executions, key=lambda e: e.id)
  return latest


# A tiny randomly initialised BERT for the pretrained-backbone tests: its vocabulary spells any
# lower-case ASCII word (letters and continuation letters), and holds the tiny corpus' words.
TINY_BERT_VOCABULARY = list(dict.fromkeys(
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + sorted({w for t in TEXTS for w in t.split()})
    + list('abcdefghijklmnopqrstuvwxyz.,!?') + [f'##{c}' for c in 'abcdefghijklmnopqrstuvwxyz']))


def tiny_bert_backbone(seed: int = 0):
  """A 2-layer, 16-wide BertBackbone over TINY_BERT_VOCABULARY, randomly initialised."""
  import keras  # pylint: disable=import-outside-toplevel
  import keras_hub  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(seed)
  return keras_hub.models.BertBackbone(
      vocabulary_size=len(TINY_BERT_VOCABULARY), num_layers=2, num_heads=2, hidden_dim=16,
      intermediate_dim=32, max_sequence_length=64)


def save_keras_hub_preset(backbone, directory: str) -> str:
  """`backbone` and a lower-casing BertTokenizer as a KerasHub preset directory."""
  import keras_hub  # pylint: disable=import-outside-toplevel
  backbone.save_to_preset(directory)
  keras_hub.models.BertTokenizer(vocabulary=TINY_BERT_VOCABULARY,
                                 lowercase=True).save_to_preset(directory)
  return directory


def save_hugging_face_checkpoint(backbone, directory: str) -> str:
  """`backbone` as a Hugging Face `transformers` BERT checkpoint directory: config.json,
  model.safetensors (Hugging Face's weight names and layouts), vocab.txt, tokenizer_config.json."""
  import json  # pylint: disable=import-outside-toplevel
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  def dense(kernel):  # Keras [in, ..., out] -> Hugging Face [out, in]
    kernel = np.asarray(kernel)
    return np.ascontiguousarray(np.reshape(kernel, (kernel.shape[0], -1)).T)

  def projection(kernel):  # attention output: Keras [heads, head_dim, out] -> [out, in]
    kernel = np.asarray(kernel)
    return np.ascontiguousarray(np.reshape(kernel, (-1, kernel.shape[-1])).T)

  def layer_norm(prefix, layer):
    return {f'{prefix}.gamma': np.asarray(layer.gamma), f'{prefix}.beta': np.asarray(layer.beta)}

  weights = {
      'embeddings.word_embeddings.weight': backbone.get_layer('token_embedding').embeddings,
      'embeddings.position_embeddings.weight':
          backbone.get_layer('position_embedding').position_embeddings,
      'embeddings.token_type_embeddings.weight': backbone.get_layer('segment_embedding').embeddings,
      **layer_norm('embeddings.LayerNorm', backbone.get_layer('embeddings_layer_norm')),
      'pooler.dense.weight': dense(backbone.get_layer('pooled_dense').kernel),
      'pooler.dense.bias': backbone.get_layer('pooled_dense').bias,
  }
  for i in range(backbone.num_layers):
    block = backbone.get_layer(f'transformer_layer_{i}')
    attention = block._self_attention_layer  # pylint: disable=protected-access
    prefix = f'encoder.layer.{i}'
    for name in ('query', 'key', 'value'):
      layer = getattr(attention, f'{name}_dense')
      weights[f'{prefix}.attention.self.{name}.weight'] = dense(layer.kernel)
      weights[f'{prefix}.attention.self.{name}.bias'] = np.reshape(layer.bias, [-1])
    weights[f'{prefix}.attention.output.dense.weight'] = projection(attention.output_dense.kernel)
    weights[f'{prefix}.attention.output.dense.bias'] = attention.output_dense.bias
    weights.update(layer_norm(f'{prefix}.attention.output.LayerNorm',
                              block._self_attention_layer_norm))  # pylint: disable=protected-access
    intermediate = block._feedforward_intermediate_dense  # pylint: disable=protected-access
    output = block._feedforward_output_dense  # pylint: disable=protected-access
    weights[f'{prefix}.intermediate.dense.weight'] = dense(intermediate.kernel)
    weights[f'{prefix}.intermediate.dense.bias'] = intermediate.bias
    weights[f'{prefix}.output.dense.weight'] = dense(output.kernel)
    weights[f'{prefix}.output.dense.bias'] = output.bias
    weights.update(layer_norm(f'{prefix}.output.LayerNorm',
                              block._feedforward_layer_norm))  # pylint: disable=protected-access
  os.makedirs(directory, exist_ok=True)
  save_file({name: np.ascontiguousarray(np.asarray(value, 'float32'))
             for name, value in weights.items()}, os.path.join(directory, 'model.safetensors'))
  config = {'model_type': 'bert', 'architectures': ['BertModel'],
            'vocab_size': backbone.vocabulary_size, 'num_hidden_layers': backbone.num_layers,
            'num_attention_heads': backbone.num_heads, 'hidden_size': backbone.hidden_dim,
            'intermediate_size': backbone.intermediate_dim,
            'max_position_embeddings': backbone.max_sequence_length, 'type_vocab_size': 2}
  files = {'config.json': json.dumps(config),
           'tokenizer_config.json': json.dumps({'do_lower_case': True,
                                                'tokenizer_class': 'BertTokenizer'}),
           'vocab.txt': ''.join(token + '\n' for token in TINY_BERT_VOCABULARY)}
  for name, content in files.items():
    with open(os.path.join(directory, name), 'w', encoding='utf-8') as f:
      f.write(content)
  return directory


# Splits the ops of a SavedModel into core TF ops, TF Text ops and anything else ('FOREIGN'); run
# in a fresh process, so that only the ops TensorFlow and TF Text register are known.
_CLASSIFY_OPS = '''
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


def serving_graph_ops(model_dir: str):
  """(ops neither core TF nor TF Text, TF Text ops) of the SavedModel in `model_dir`."""
  result = subprocess.run([sys.executable, '-c', _CLASSIFY_OPS, model_dir],
                          capture_output=True, text=True, check=True)
  lines = dict(line.split(' ', 1) for line in result.stdout.splitlines()
               if line.startswith(('FOREIGN', 'TEXT')))
  return ast.literal_eval(lines['FOREIGN']), ast.literal_eval(lines['TEXT'])


def open_in_chromium(path: str) -> dict:
  """What headless Chromium makes of the page at `path`: its text, each image's natural width
  (0: not rendered) and alt text, and the console's error messages."""
  # pylint: disable=import-outside-toplevel
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = '/usr/bin/chromium'  # Debian's (the Makefile installs it)
  for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'):
    options.add_argument(argument)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  driver = webdriver.Chrome(options=options, service=Service('/usr/bin/chromedriver'))
  try:
    driver.get(pathlib.Path(path).as_uri())
    return {
        'text': driver.find_element('tag name', 'body').text,
        'image_widths': driver.execute_script(
            'return Array.from(document.images, image => image.complete ? image.naturalWidth : 0)'),
        'image_alts': driver.execute_script(
            'return Array.from(document.images, image => image.alt)'),
        'console_errors': [entry['message'] for entry in driver.get_log('browser')
                           if entry['level'] == 'SEVERE'],
    }
  finally:
    driver.quit()
