"""How a classifier is optimised: the loss, AdamW with warm-up and cosine decay, and the
16-bit compute policy."""

import contextlib
from typing import Optional

import keras

from models import strategy as strategy_lib
from models.settings import TrainingSettings


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
  """Layers built inside compute in `mixed_precision` ('' = float32); the process-wide policy is
  restored afterwards (layers keep the policy they were built with)."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(mixed_precision or 'float32')
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


class SparseCrossentropy(keras.losses.Loss):
  """Cross-entropy of class probabilities against integer labels, with label smoothing (which
  Keras' SparseCategoricalCrossentropy lacks)."""

  def __init__(self, label_smoothing: float = 0.0, name: str = 'sparse_crossentropy'):
    super().__init__(name=name)
    self.label_smoothing = label_smoothing

  def call(self, labels, probabilities):
    one_hot = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(labels, 'int32'), [-1]),
                                keras.ops.shape(probabilities)[-1])
    return keras.losses.categorical_crossentropy(one_hot, probabilities,
                                                 label_smoothing=self.label_smoothing)


def compile_model(model: keras.Model, total_steps: int, settings: TrainingSettings,
                  num_replicas: int = 1, loss: Optional[keras.losses.Loss] = None,
                  metrics: Optional[list] = None) -> None:
  """AdamW with linear warm-up then cosine decay over `total_steps`, the peak learning rate scaled
  for `num_replicas`. Under mixed_float16 Keras adds loss scaling. Call it in the scope of the
  training strategy, with `settings` resolved (settings.resolve_training). Default loss and
  metric: cross-entropy with the label ids (label smoothing from `settings`), and accuracy."""
  warmup_steps = int(total_steps * settings.warmup_fraction)
  schedule = keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, decay_steps=max(total_steps - warmup_steps, 1),
      warmup_target=strategy_lib.scaled_learning_rate(
          settings.learning_rate, num_replicas, settings.learning_rate_scaling),
      warmup_steps=warmup_steps)
  model.compile(
      optimizer=keras.optimizers.AdamW(learning_rate=schedule,
                                       weight_decay=settings.weight_decay),
      loss=loss or SparseCrossentropy(settings.label_smoothing),
      metrics=metrics or [keras.metrics.SparseCategoricalAccuracy(name='accuracy')],
      jit_compile=settings.jit_compile,
      steps_per_execution=strategy_lib.supported_steps_per_execution(
          settings.steps_per_execution))
