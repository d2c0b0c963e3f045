"""Shared fixtures: a slice of the bundled SST-2 data, and a tiny Transform output and exported
model (what they are made of: tests/helpers.py)."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import metadata_io

from models import (classifier, data, export, features, optimization, preprocessing,
                    strategy as strategy_lib)
from models.settings import PreprocessingSettings, as_custom_config
from tests.helpers import (LABELS, MAX_SEQ_LENGTH, SST2_DIR, TEXTS, TINY_MODEL, TINY_TRAINING,
                           save_hugging_face_checkpoint, save_keras_hub_preset,
                           tiny_bert_backbone, write_slice)


@pytest.fixture(scope='session')
def sst2_slice(tmp_path_factory) -> str:
  """A directory with train.tsv (3,000 rows) and validation.tsv (200 rows) from SST-2."""
  directory = tmp_path_factory.mktemp('sst2_slice')
  write_slice(os.path.join(SST2_DIR, 'train.tsv'), str(directory / 'train.tsv'), 3000)
  write_slice(os.path.join(SST2_DIR, 'validation.tsv'), str(directory / 'validation.tsv'), 200)
  return str(directory)


def run_transform(temp_dir: str, model: dict):
  """(transformed rows, TFTransformOutput) of preprocessing_fn run by tf.Transform on Beam over
  the tiny corpus, tokenizing for `model` (architecture and backbone)."""
  raw = [{features.TEXT_KEY: text.encode(), features.LABEL_KEY: label.encode()}
         for text, label in zip(TEXTS * 10, LABELS * 10, strict=True)]
  metadata = tft.DatasetMetadata.from_feature_spec({
      features.TEXT_KEY: tf.io.FixedLenFeature([], tf.string),
      features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string)})
  custom_config = {
      'preprocessing': as_custom_config(
          PreprocessingSettings(vocab_size=100, max_seq_length=MAX_SEQ_LENGTH)),
      # Configured class names keep their order: 'neg' is id 0 although 'pos' comes first.
      'label_names': ['neg', 'pos'],
      'model': model}
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
def tiny_transform(tmp_path_factory):
  """The tiny corpus through Transform for the from-scratch model (a learned vocabulary)."""
  return run_transform(str(tmp_path_factory.mktemp('tft')), {'architecture': 'transformer'})


@pytest.fixture(scope='session')
def tiny_bert_dirs(tmp_path_factory):
  """{format: directory}: one tiny random BERT saved as a KerasHub preset and as a Hugging Face
  checkpoint."""
  backbone = tiny_bert_backbone()
  root = tmp_path_factory.mktemp('tiny_bert')
  return {'keras_hub': save_keras_hub_preset(backbone, str(root / 'keras_hub')),
          'hugging_face': save_hugging_face_checkpoint(backbone, str(root / 'hugging_face'))}


@pytest.fixture(scope='session')
def tiny_bert_transform(tiny_bert_dirs, tmp_path_factory):
  """The tiny corpus through Transform for the tiny BERT (its own vocabulary)."""
  return run_transform(str(tmp_path_factory.mktemp('tft_bert')),
                       {'architecture': 'pretrained', 'backbone': tiny_bert_dirs['keras_hub']})


@pytest.fixture(scope='session')
def tiny_model_dir(tiny_transform, tmp_path_factory) -> str:
  """A SavedModel exported by the Trainer's export code from a tiny model trained on TEXTS."""
  transformed, output = tiny_transform
  token_ids = np.stack([row[features.TOKEN_IDS_KEY] for row in transformed])
  label_ids = np.array([row[features.LABEL_ID_KEY] for row in transformed])
  strategy = strategy_lib.create_strategy(TINY_TRAINING.distribution_strategy)
  with strategy.scope():
    model = classifier.build_classifier(TINY_MODEL, len(data.vocabulary(output)), MAX_SEQ_LENGTH,
                                        num_classes=2)
    optimization.compile_model(model, total_steps=20, settings=TINY_TRAINING)
  history = model.fit({features.TOKEN_IDS_KEY: token_ids}, label_ids, batch_size=8, epochs=4,
                      verbose=0)
  assert history.history['loss'][-1] < history.history['loss'][0]
  export_dir = str(tmp_path_factory.mktemp('export') / 'model')
  export.export_serving_model(model, output, data.label_names(output), export_dir)
  return export_dir
