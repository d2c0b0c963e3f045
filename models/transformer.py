"""The Transformer encoder classifier trained from scratch (architecture 'transformer'), on the
WordPiece vocabulary Transform learns from the training split."""

import keras
import keras_hub

from models import features, heads
from models.settings import ModelSettings


def build_classifier(settings: ModelSettings, vocabulary_size: int, max_seq_length: int,
                     num_classes: int) -> keras.Model:
  """Token ids [batch, length <= max_seq_length] (0 = padding) -> probabilities [batch, classes]."""
  # The length is left open: batches may be trimmed to their longest member (length buckets).
  token_ids = keras.Input(shape=(None,), dtype='int64', name=features.TOKEN_IDS_KEY)
  # Padding (id 0) is masked explicitly in attention and in the pooling.
  padding_mask = keras.ops.not_equal(token_ids, 0)
  x = keras_hub.layers.TokenAndPositionEmbedding(
      vocabulary_size=vocabulary_size, sequence_length=max_seq_length,
      embedding_dim=settings.embedding_dim, name=features.EMBEDDING_LAYER)(token_ids)
  x = keras.layers.Dropout(settings.dropout)(x)
  # Fixed layer names (as a KerasHub backbone's): weights keep their names across processes, so
  # a distillation student can take the ones it shares with its teacher.
  for index in range(settings.num_layers):
    x = keras_hub.layers.TransformerEncoder(
        intermediate_dim=settings.intermediate_dim, num_heads=settings.num_heads,
        dropout=settings.dropout, name=f'transformer_layer_{index}')(x, padding_mask=padding_mask)
  x = heads.pool(x, padding_mask, settings.pooling)
  return keras.Model({features.TOKEN_IDS_KEY: token_ids},
                     heads.class_probabilities(x, num_classes, settings.dropout))


def token_embeddings(model: keras.Model):
  """The token embedding matrix [vocabulary, width] (warm start copies its rows by token)."""
  return model.get_layer(features.EMBEDDING_LAYER).token_embedding.embeddings
