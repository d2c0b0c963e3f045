"""preprocessing_fn through real tf.Transform on Beam: WordPiece ids, padding, label ids."""

import os

import tensorflow as tf
import tensorflow_transform as tft

from models import features
from tests.helpers import MAX_SEQ_LENGTH

def vocabulary(output: tft.TFTransformOutput):
  path = os.path.join(output.transform_savedmodel_dir, 'assets',
                      features.WORDPIECE_VOCABULARY_NAME)
  with open(path, encoding='utf-8') as f:
    return f.read().splitlines()


def test_vocabulary_is_learned_with_reserved_tokens_first(tiny_transform):
  _, output = tiny_transform
  vocab = vocabulary(output)
  assert vocab[:2] == ['[PAD]', '[UNK]']
  for word in ('movie', 'great', 'boring', 'terrible'):
    assert word in vocab
  assert '##e' in vocab  # continuation pieces let unseen words be spelled out


def test_token_ids_are_wordpieces_padded_to_max_length(tiny_transform):
  transformed, output = tiny_transform
  vocab = vocabulary(output)
  first = transformed[0][features.TOKEN_IDS_KEY]
  assert len(first) == MAX_SEQ_LENGTH
  assert [vocab[i] for i in first[:3]] == ['a', 'great', 'movie']
  assert list(first[3:]) == [0] * (MAX_SEQ_LENGTH - 3)  # [PAD]


def test_label_ids_follow_configured_names(tiny_transform):
  transformed, output = tiny_transform
  assert [row[features.LABEL_ID_KEY] for row in transformed[:4]] == [1, 0, 1, 0]
  assert output.vocabulary_by_name(features.LABEL_VOCABULARY_NAME) == [b'neg', b'pos']


def test_unseen_word_splits_into_subwords_and_long_text_truncates(tiny_transform):
  _, output = tiny_transform
  vocab = vocabulary(output)
  layer = output.transform_features_layer()
  result = layer({features.TEXT_KEY: tf.constant(['moviegoers', 'fun ' * 50])})
  ids = result[features.TOKEN_IDS_KEY].numpy()
  pieces = [vocab[i] for i in ids[0] if i != 0]
  assert pieces[0] == 'movie' and len(pieces) > 1
  assert all(p.startswith('##') for p in pieces[1:])
  assert vocab.index('[UNK]') not in ids[0]
  assert list(ids[1]) == [vocab.index('fun')] * MAX_SEQ_LENGTH


def test_length_bucket_counts_words(tiny_transform):
  transformed, _ = tiny_transform
  assert transformed[0][features.LENGTH_BUCKET_KEY] == b'01-05 words'


def test_text_without_tokens_is_one_unknown_token(tiny_transform):
  _, output = tiny_transform
  layer = output.transform_features_layer()
  ids = layer({features.TEXT_KEY: tf.constant(['', '  \x07 '])})[features.TOKEN_IDS_KEY].numpy()
  unknown = vocabulary(output).index('[UNK]')
  assert ids.tolist() == [[unknown] + [0] * (MAX_SEQ_LENGTH - 1)] * 2
