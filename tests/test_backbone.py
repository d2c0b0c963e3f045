"""Pretrained backbones: loading (KerasHub preset, Hugging Face checkpoint, installed package),
tokenization identical to the checkpoint's own tokenizer, fine-tuning and a raw-text export, and
a default run that needs no network."""

import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
import tokenizers

from models import backbone, classifier, data, features, preprocessing, trainer, warm_start
from models.settings import (BUNDLED_BACKBONE, REPO_ROOT, ModelSettings, TrainingSettings,
                             as_custom_config)
from tests.helpers import (LABELS, TEXTS, TINY_BERT_VOCABULARY, read_run, serving_graph_ops,
                           write_transformed_examples)

BUNDLED_DIR = backbone.resolve_handle(BUNDLED_BACKBONE)
MAX_LENGTH = 32

# Texts whose tokenization is easy to get wrong: accents, emoji, CJK, HTML-ish, control
# characters, very long text.
HARD_TEXTS = [
    'Café naïve Ångström — über résumé',
    'I loved it 😍🔥 10/10 !!!',
    '東京 の 映画 はすばらしい',
    '<b>bold</b> &amp; "quoted" it\'s can\'t -lrb- x -rrb-',
    'tab\there, bell\x07, zero-width\u200bjoiner',
    'antidisestablishmentarianism ' * 40,
    '',
]


def test_package_handle_resolves_to_the_installed_checkpoint():
  assert os.path.isfile(os.path.join(BUNDLED_DIR, 'config.json'))
  assert os.path.isfile(os.path.join(BUNDLED_DIR, 'model.safetensors'))


def test_missing_package_is_a_clear_error():
  with pytest.raises(ValueError, match="package 'no_such_package' is not installed"):
    backbone.resolve_handle('package://no_such_package/model')


def test_token_ids_match_the_checkpoints_own_tokenizer():
  vocabulary = backbone.load_vocabulary(BUNDLED_BACKBONE)
  lookup = preprocessing._wordpiece_lookup_fn(  # pylint: disable=protected-access
      MAX_LENGTH, preprocessing.backbone_tokenization(vocabulary))
  ids, _ = lookup(tf.constant(HARD_TEXTS), os.path.join(BUNDLED_DIR, 'vocab.txt'))
  reference = tokenizers.Tokenizer.from_file(os.path.join(BUNDLED_DIR, 'tokenizer.json'))
  reference.no_padding()
  reference.enable_truncation(MAX_LENGTH)
  for text, row in zip(HARD_TEXTS, ids.numpy().tolist(), strict=True):
    expected = reference.encode(text).ids  # [CLS] ... [SEP], truncated
    assert row == expected + [0] * (MAX_LENGTH - len(expected)), text


def test_hugging_face_and_keras_hub_formats_load_the_same_weights(tiny_bert_dirs):
  token_ids = np.array([[2, 7, 8, 3, 0]])
  outputs = []
  for directory in tiny_bert_dirs.values():
    settings = ModelSettings(backbone=directory, pooling='cls', dropout=0.0)
    keras.utils.set_random_seed(1)  # the same head
    model = classifier.build_classifier(settings, len(TINY_BERT_VOCABULARY), 16, 2)
    outputs.append(model({features.TOKEN_IDS_KEY: token_ids}))
  np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)


@pytest.mark.parametrize('pooling', ['cls', 'mean', 'max'])
def test_padding_does_not_change_predictions(tiny_bert_dirs, pooling):
  directory = tiny_bert_dirs['keras_hub']
  settings = ModelSettings(backbone=directory, pooling=pooling)
  model = classifier.build_classifier(settings, len(TINY_BERT_VOCABULARY), 16, 2)
  short = model({features.TOKEN_IDS_KEY: np.array([[2, 7, 8, 3]])})
  padded = model({features.TOKEN_IDS_KEY: np.array([[2, 7, 8, 3, 0, 0]])})
  np.testing.assert_allclose(short, padded, atol=1e-5)


def test_frozen_embeddings_and_layers_are_not_trained(tiny_bert_dirs):
  directory = tiny_bert_dirs['keras_hub']
  settings = ModelSettings(backbone=directory, freeze_embeddings=True, frozen_layers=1)
  model = classifier.build_classifier(settings, len(TINY_BERT_VOCABULARY), 16, 2)
  trainable = {variable.path for variable in model.trainable_variables}
  assert not any('token_embedding' in path for path in trainable)
  assert not any('transformer_layer_0/' in path for path in trainable)
  assert any('transformer_layer_1/' in path for path in trainable)


# WordPiece encoder families besides BERT: (backbone, tokenizer) classes and backbone arguments.
FAMILIES = {
    'distil_bert': ('DistilBertBackbone', 'DistilBertTokenizer', {'vocabulary_size': None}),
    'electra': ('ElectraBackbone', 'ElectraTokenizer', {'vocab_size': None, 'embedding_dim': 16}),
}


@pytest.mark.parametrize('family', sorted(FAMILIES))
@pytest.mark.parametrize('pooling', ['cls', 'mean'])
def test_other_wordpiece_families_fine_tune(family, pooling, tmp_path):
  backbone_class, tokenizer_class, arguments = FAMILIES[family]
  size = len(TINY_BERT_VOCABULARY)
  getattr(keras_hub.models, backbone_class)(
      **{name: value or size for name, value in arguments.items()}, num_layers=2, num_heads=2,
      hidden_dim=16, intermediate_dim=32, max_sequence_length=64).save_to_preset(str(tmp_path))
  getattr(keras_hub.models, tokenizer_class)(
      vocabulary=TINY_BERT_VOCABULARY, lowercase=True).save_to_preset(str(tmp_path))
  settings = ModelSettings(backbone=str(tmp_path), pooling=pooling, frozen_layers=1)
  model = classifier.build_classifier(settings, size, 16, 2)
  probabilities = model({features.TOKEN_IDS_KEY: np.array([[2, 7, 8, 3, 0]])})
  np.testing.assert_allclose(np.sum(probabilities, axis=-1), [1.0], rtol=1e-5)
  assert any('transformer_layer_1' in v.path for v in model.trainable_variables)
  assert not any('transformer_layer_0' in v.path for v in model.trainable_variables)


def test_too_many_frozen_layers_is_a_clear_error(tiny_bert_dirs):
  directory = tiny_bert_dirs['keras_hub']
  with pytest.raises(ValueError, match='frozen_layers 5 exceeds'):
    classifier.build_classifier(ModelSettings(backbone=directory, frozen_layers=5),
                                len(TINY_BERT_VOCABULARY), 16, 2)


def test_a_transform_output_of_another_vocabulary_is_a_clear_error(tiny_bert_dirs):
  with pytest.raises(ValueError, match='made for another model'):
    classifier.build_classifier(ModelSettings(backbone=tiny_bert_dirs['keras_hub']), 100, 16, 2)


def test_a_tokenizer_that_is_not_wordpiece_is_a_clear_error(tmp_path):
  # A tiny GPT-2: a byte-pair encoding tokenizer.
  vocabulary = {'<|endoftext|>': 0, 'a': 1, 'b': 2, 'ab': 3}
  keras_hub.models.GPT2Backbone(vocabulary_size=4, num_layers=1, num_heads=1, hidden_dim=4,
                                intermediate_dim=8, max_sequence_length=8).save_to_preset(
                                    str(tmp_path))
  keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=['a b']).save_to_preset(
      str(tmp_path))
  with pytest.raises(ValueError, match='only WordPiece tokenizers'):
    backbone.load_vocabulary(str(tmp_path))


def test_transform_wraps_texts_in_cls_and_sep(tiny_bert_transform, tiny_bert_dirs):
  transformed, _ = tiny_bert_transform
  vocabulary = backbone.load_vocabulary(tiny_bert_dirs['keras_hub']).tokens
  ids = [i for i in transformed[0][features.TOKEN_IDS_KEY] if i]
  assert [vocabulary[i] for i in ids] == ['[CLS]', 'a', 'great', 'movie', '[SEP]']


@pytest.fixture(scope='module')
def fine_tuned(tiny_bert_transform, tiny_bert_dirs, tmp_path_factory):
  """(work dir, settings) of run_fn fine-tuning the tiny BERT (Hugging Face format) for 12 steps
  in 3 evaluation rounds of 4 (the data would give 8 steps an epoch)."""
  transformed, output = tiny_bert_transform
  work_dir = tmp_path_factory.mktemp('fine_tuned')
  examples_dir = str(work_dir / 'examples')
  write_transformed_examples(transformed, examples_dir)
  settings = ModelSettings(backbone=tiny_bert_dirs['hugging_face'])
  training = TrainingSettings(batch_size=8, epochs=3, max_steps=12, steps_per_evaluation=4,
                              learning_rate=1e-3, early_stopping_patience=3)
  trainer.run_fn(trainer.local_fn_args(
      os.path.dirname(output.transform_savedmodel_dir), examples_dir, str(work_dir),
      {'model': as_custom_config(settings), 'training': as_custom_config(training)}))
  return work_dir, settings


def test_training_runs_the_step_budget_in_evaluation_rounds(fine_tuned):
  work_dir, _ = fine_tuned
  validation = read_run(str(work_dir / 'logs' / 'validation'))
  assert sorted(event.step for event in validation.Tensors('epoch_accuracy')) == [0, 1, 2]


def test_fine_tuned_backbone_serves_raw_text(fine_tuned):
  work_dir, _ = fine_tuned
  model_dir = str(work_dir / 'serving')
  result = subprocess.run([sys.executable, '-c', SERVE, model_dir, json.dumps(TEXTS + HARD_TEXTS)],
                          capture_output=True, text=True, check=True, timeout=300)
  outputs = json.loads(result.stdout.splitlines()[-1])
  assert np.allclose(np.sum(outputs['probabilities'], axis=-1), 1.0, atol=1e-5)
  assert set(outputs['label']) <= set(LABELS)
  foreign, text_ops = serving_graph_ops(model_dir)
  assert foreign == [] and 'WordpieceTokenizeWithOffsets' in text_ops


def test_warm_start_from_a_fine_tuned_backbone_predicts_like_it(fine_tuned, tiny_bert_transform):
  work_dir, settings = fine_tuned
  transformed, output = tiny_bert_transform
  vocabulary = data.vocabulary(output)
  model = classifier.build_classifier(settings, len(vocabulary), 16, 2)
  copied = warm_start.initialize_from_base_model(
      model, classifier.token_embeddings(model, settings), str(work_dir / 'serving'), vocabulary)
  assert copied == len(vocabulary)
  token_ids = np.stack([row[features.TOKEN_IDS_KEY] for row in transformed[:len(TEXTS)]])
  serve = tf.saved_model.load(str(work_dir / 'serving')).signatures[features.SERVING_SIGNATURE]
  np.testing.assert_allclose(model({features.TOKEN_IDS_KEY: token_ids}, training=False),
                             serve(text=tf.constant(TEXTS))[features.PROBABILITIES_KEY],
                             atol=1e-5)


SERVE = '''
import json, sys
import tensorflow_text  # registers the TF Text ops of the serving graph
import tensorflow as tf
outputs = tf.saved_model.load(sys.argv[1]).signatures['serving_default'](
    text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({'probabilities': outputs['probabilities'].numpy().tolist(),
                  'label': [label.decode() for label in outputs['label'].numpy()]}))
'''

# Builds the default model (the bundled backbone) with every socket connection refused.
OFFLINE_BUILD = '''
import socket
def refuse(*args, **kwargs):
  raise OSError('network access attempted')
socket.socket.connect = refuse
socket.create_connection = refuse
from models import backbone, classifier
from models.settings import ModelSettings
settings = ModelSettings()
vocabulary = backbone.load_vocabulary(settings.backbone)
model = classifier.build_classifier(settings, len(vocabulary.tokens), 64, 2)
print('PARAMETERS', model.count_params())
'''


def test_default_model_loads_without_network():
  environment = {key: value for key, value in os.environ.items()
                 if not key.startswith(('HF_', 'KAGGLE'))}
  result = subprocess.run([sys.executable, '-c', OFFLINE_BUILD], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, env=environment)
  assert result.returncode == 0, result.stderr[-3000:]
  parameters = int(result.stdout.split('PARAMETERS')[-1])
  assert 22_000_000 < parameters < 23_500_000  # all-MiniLM-L6-v2 and a 2-class head
