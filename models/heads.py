"""What turns an encoder's token vectors into class probabilities; shared by every architecture."""

import keras

from models import features


def pool(x, padding_mask, pooling: str):
  """[batch, length, width] -> [batch, width] (or 2 × width for mean_max), ignoring padding."""
  if pooling not in ('mean', 'max', 'mean_max'):
    raise ValueError(f'Unknown pooling {pooling!r}; expected mean, max or mean_max.')
  pooled = []
  if pooling in ('mean', 'mean_max'):
    pooled.append(keras.layers.GlobalAveragePooling1D()(x, mask=padding_mask))
  if pooling in ('max', 'mean_max'):
    # Padding positions get the lowest value, so they never win the max.
    masked = keras.ops.where(keras.ops.expand_dims(padding_mask, -1), x, -1e9)
    pooled.append(keras.ops.max(masked, axis=1))
  return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)


def class_probabilities(text_vectors, num_classes: int, dropout: float):
  """[batch, width] -> softmax probabilities [batch, classes]."""
  x = keras.layers.Dropout(dropout)(text_vectors)
  # float32 under mixed precision too: a softmax in 16 bits loses small probabilities.
  return keras.layers.Dense(num_classes, activation='softmax', dtype='float32',
                            name=features.PROBABILITIES_KEY)(x)
