"""Shared fixtures: slices of the bundled SST-2 data, small pipeline settings, and a tiny
Transform output and exported model."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import metadata_io

from models import export, features, model as model_lib, preprocessing, strategy as strategy_lib
from pipeline.config import (IngestionSettings, ModelSettings, PipelineConfig,
                             PreprocessingSettings, TrainingSettings, as_custom_config)

SST2_DIR = os.environ.get('TEXT_CLASSIFIER_DATA_ROOT', IngestionSettings().data_root)


def write_slice(source: str, destination: str, rows: int) -> None:
  """The header and the first `rows` rows of a bundled TSV file."""
  with open(source, encoding='utf-8') as src, open(destination, 'w', encoding='utf-8') as dst:
    for line_number, line in enumerate(src):
      if line_number > rows:
        break
      dst.write(line)


@pytest.fixture(scope='session')
def sst2_slice(tmp_path_factory) -> str:
  """A directory with train.tsv (3,000 rows) and validation.tsv (200 rows) from SST-2."""
  directory = tmp_path_factory.mktemp('sst2_slice')
  write_slice(os.path.join(SST2_DIR, 'train.tsv'), str(directory / 'train.tsv'), 3000)
  write_slice(os.path.join(SST2_DIR, 'validation.tsv'), str(directory / 'validation.tsv'), 200)
  return str(directory)


def small_config(data_root: str, output_root: str) -> PipelineConfig:
  """A pipeline that runs in about a minute: small vocabulary and model, one epoch, no floor."""
  config = PipelineConfig(
      output_dir=os.path.join(output_root, 'tfx_output'),
      serving_model_dir=os.path.join(output_root, 'serving_model'),
      preprocessing=PreprocessingSettings(vocab_size=2000, max_seq_length=32),
      model=ModelSettings(embedding_dim=32, num_layers=1, num_heads=2, intermediate_dim=64),
      training=TrainingSettings(epochs=1, batch_size=32))
  return dataclasses.replace(
      config,
      ingestion=dataclasses.replace(config.ingestion, data_root=data_root),
      evaluation=dataclasses.replace(config.evaluation, accuracy_lower_bound=0.0,
                                     accuracy_regression_tolerance=1.0))


# A tiny labelled corpus for Transform and model tests, and the model trained on it.
MAX_SEQ_LENGTH = 12
TINY_MODEL = ModelSettings(embedding_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
TEXTS = ['a great movie', 'a terrible , boring movie', 'great great fun', 'boring and terrible',
         'the movie was fun', 'a boring story']
LABELS = ['pos', 'neg', 'pos', 'neg', 'pos', 'neg']


@pytest.fixture(scope='session')
def tiny_transform(tmp_path_factory):
  """(transformed rows, TFTransformOutput) of preprocessing_fn run by tf.Transform on Beam."""
  temp_dir = str(tmp_path_factory.mktemp('tft'))
  raw = [{features.TEXT_KEY: t.encode(), features.LABEL_KEY: l.encode()}
         for t, l in zip(TEXTS * 10, LABELS * 10)]
  metadata = tft.DatasetMetadata.from_feature_spec({
      features.TEXT_KEY: tf.io.FixedLenFeature([], tf.string),
      features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string)})
  custom_config = {
      'preprocessing': as_custom_config(
          PreprocessingSettings(vocab_size=100, max_seq_length=MAX_SEQ_LENGTH)),
      # Configured class names keep their order: 'neg' is id 0 although 'pos' comes first.
      'label_names': ['neg', 'pos']}
  with tft_beam.Context(temp_dir=temp_dir):
    (transformed, _), transform_fn = (
        (raw, metadata)
        | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config)))
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(temp_dir, 'out'))
  # TFX's Transform also records the raw schema; the export reads the raw feature spec from it.
  metadata_io.write_metadata(
      metadata, os.path.join(temp_dir, 'out', tft.TFTransformOutput.RAW_METADATA_DIR))
  return transformed, tft.TFTransformOutput(os.path.join(temp_dir, 'out'))


@pytest.fixture(scope='session')
def tiny_model_dir(tiny_transform, tmp_path_factory) -> str:
  """A SavedModel exported by the Trainer's export code from a tiny model trained on TEXTS."""
  transformed, output = tiny_transform
  token_ids = np.stack([row[features.TOKEN_IDS_KEY] for row in transformed])
  label_ids = np.array([row[features.LABEL_ID_KEY] for row in transformed])
  strategy = strategy_lib.create_strategy(TrainingSettings().distribution_strategy)
  with strategy.scope():
    model = model_lib.build_model(
        len(model_lib.wordpiece_vocabulary(output)), MAX_SEQ_LENGTH, num_classes=2,
        settings=TINY_MODEL)
    model_lib.compile_model(model, total_steps=20, settings=TrainingSettings(learning_rate=5e-3))
  history = model.fit({features.TOKEN_IDS_KEY: token_ids}, label_ids, batch_size=8, epochs=4,
                      verbose=0)
  assert history.history['loss'][-1] < history.history['loss'][0]
  export_dir = str(tmp_path_factory.mktemp('export') / 'model')
  export.export_serving_model(model, output, model_lib.label_names(output), export_dir)
  return export_dir
