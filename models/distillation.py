"""Task-specific distillation: a small student learns the fine-tuned teacher's class
probabilities over the training split (Hinton et al. 2015, "Distilling the Knowledge in a Neural
Network"; Tang et al. 2019 for BERT teachers on SST-2).

The teacher's probabilities are computed once, in one ordered pass over the training split (and
one over its augmented copies, models/augmentation.py), and kept in memory with the token ids;
every epoch of the student reads them from there. Targets are
packed as [label id, teacher probabilities at the temperature...] so Keras' fit, the length
buckets and the strategy's distribution carry them like any label.
"""

import dataclasses
import json
import os
import time
from typing import Callable, List, Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from absl import logging
from tfx import v1 as tfx

from models import augmentation, data, features, strategy as strategy_lib, trainer
from models.settings import TrainingSettings

# What the run records about the teacher's pass, in the student's model_run directory.
TEACHER_PASS_FILE = 'teacher_pass.json'
TEACHER_BATCH_SIZE = 128

# The floor under probabilities before their logarithm: a float32 softmax can underflow to 0.
_MIN_PROBABILITY = 1e-7


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
  """softmax(log(p) / T): the distribution a softmax over logits / T would give."""
  logits = np.log(np.maximum(probabilities, _MIN_PROBABILITY)) / temperature
  logits -= logits.max(axis=-1, keepdims=True)
  exp = np.exp(logits)
  return exp / exp.sum(axis=-1, keepdims=True)


def pack_targets(label_ids: np.ndarray, soft_targets: np.ndarray) -> np.ndarray:
  """[examples, 1 + classes]: the label id, then the teacher's softened probabilities."""
  return np.concatenate([label_ids.reshape(-1, 1).astype(np.float32),
                         soft_targets.astype(np.float32)], axis=-1)


class DistillationLoss(keras.losses.Loss):
  """label_weight × cross-entropy with the true label + (1 − label_weight) × T² × cross-entropy
  with the teacher's probabilities at temperature T (T² keeps the soft part's gradients at the
  scale of the hard part's, as in Hinton et al.). A text without a label (label id −1: extra
  text, augmented text) learns from the teacher's probabilities alone."""

  def __init__(self, temperature: float, label_weight: float, name: str = 'distillation'):
    super().__init__(name=name)
    self.temperature = temperature
    self.label_weight = label_weight

  def call(self, targets, probabilities):
    label_ids = keras.ops.cast(targets[:, 0], 'int32')
    hard_weight = self.label_weight * keras.ops.cast(label_ids >= 0, probabilities.dtype)
    soft_targets = targets[:, 1:]
    log_probabilities = keras.ops.log(keras.ops.clip(probabilities, _MIN_PROBABILITY, 1.0))
    hard = -keras.ops.sum(
        keras.ops.one_hot(keras.ops.maximum(label_ids, 0), keras.ops.shape(probabilities)[-1])
        * log_probabilities, axis=-1)
    soft = -keras.ops.sum(
        soft_targets * keras.ops.log_softmax(log_probabilities / self.temperature, axis=-1),
        axis=-1) * self.temperature ** 2
    return hard_weight * hard + (1.0 - hard_weight) * soft


class LabelledAccuracy(keras.metrics.Mean):
  """Accuracy against the true labels, over the texts that have one (label id >= 0)."""

  def update_state(self, targets, probabilities, sample_weight=None):
    label_ids = keras.ops.cast(targets[:, 0], 'int64')
    correct = keras.ops.cast(
        keras.ops.equal(keras.ops.argmax(probabilities, axis=-1), label_ids), 'float32')
    labelled = keras.ops.cast(label_ids >= 0, 'float32')
    if sample_weight is not None:
      labelled = labelled * keras.ops.cast(sample_weight, 'float32')
    return super().update_state(correct, sample_weight=labelled)


def _agreement(targets, probabilities):
  same = keras.ops.equal(keras.ops.argmax(probabilities, axis=-1),
                         keras.ops.argmax(targets[:, 1:], axis=-1))
  return keras.ops.cast(same, 'float32')


def metrics():
  """accuracy against the true labels; agreement: the share of the teacher's predictions the
  student makes too."""
  return [LabelledAccuracy(name='accuracy'),
          keras.metrics.MeanMetricWrapper(_agreement, name='agreement')]


@dataclasses.dataclass
class TeacherPass:
  """The teacher's view of some texts, in the order they were read."""
  texts: np.ndarray  # [examples] of bytes, as cleaned
  token_ids: np.ndarray  # [examples, max_seq_length], as the Transform graph wrote them
  label_ids: np.ndarray  # [examples]; -1: a text without a label
  probabilities: np.ndarray  # [examples, classes]
  seconds: float  # the whole pass: reading, tokenizing and scoring

  @classmethod
  def joined(cls, passes: List['TeacherPass']) -> 'TeacherPass':
    return cls(*(np.concatenate([getattr(p, field) for p in passes])
                 for field in ('texts', 'token_ids', 'label_ids', 'probabilities')),
               seconds=sum(p.seconds for p in passes))


def _score_by_length(score: Callable[[tf.Tensor], np.ndarray], inputs: np.ndarray,
                     token_ids: np.ndarray, batch_size: int) -> np.ndarray:
  """score(inputs) in batches of texts of similar length (the export trims padding, so short
  texts cost less), returned in the inputs' order."""
  by_length = np.argsort(np.count_nonzero(token_ids, axis=-1), kind='stable')
  probabilities = None
  for start in range(0, len(by_length), batch_size):
    rows = by_length[start:start + batch_size]
    scored = score(tf.constant(inputs[rows]))
    if probabilities is None:
      probabilities = np.empty((len(by_length), scored.shape[-1]), np.float32)
    probabilities[rows] = scored
  return probabilities


def teacher_pass(teacher, file_patterns: List[str], batch_size: int) -> TeacherPass:
  """One pass of the teacher's exported model (loaded with tf.saved_model.load) over raw
  (gzipped tf.Example) files: its own `transform_features` signature tokenizes them, then
  `serving_tf_example` scores them."""
  started = time.perf_counter()
  transform = teacher.signatures[features.TRANSFORM_SIGNATURE]
  score = teacher.signatures[features.TF_EXAMPLE_SIGNATURE]
  files = sorted(path for pattern in file_patterns for path in tf.io.gfile.glob(pattern))
  serialized, texts, token_ids, label_ids = [], [], [], []
  for batch in tf.data.TFRecordDataset(files, compression_type='GZIP').batch(1024):
    transformed = transform(examples=batch)
    serialized.append(batch.numpy())
    texts.append(tf.io.parse_example(batch, {features.TEXT_KEY: tf.io.FixedLenFeature(
        [], tf.string)})[features.TEXT_KEY].numpy())
    token_ids.append(transformed[features.TOKEN_IDS_KEY].numpy())
    label_ids.append(transformed[features.LABEL_ID_KEY].numpy().reshape(-1))
  token_ids = np.concatenate(token_ids)
  probabilities = _score_by_length(
      lambda examples: score(examples=examples)[features.PROBABILITIES_KEY].numpy(),
      np.concatenate(serialized), token_ids, batch_size)
  return TeacherPass(np.concatenate(texts), token_ids, np.concatenate(label_ids), probabilities,
                     time.perf_counter() - started)


def teacher_pass_over_texts(teacher, transform_output: tft.TFTransformOutput, texts: List[str],
                            batch_size: int) -> TeacherPass:
  """The teacher's pass over texts without labels: the Transform graph tokenizes them (for the
  student), the teacher's `serving_default` scores the raw texts."""
  started = time.perf_counter()
  text_shape = transform_output.raw_feature_spec()[features.TEXT_KEY].shape
  transform_layer = transform_output.transform_features_layer()

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(batch):
    return transform_layer({features.TEXT_KEY: tf.reshape(batch, [-1] + list(text_shape))})[
        features.TOKEN_IDS_KEY]

  encoded = np.array([text.encode('utf-8') for text in texts], dtype=object)
  token_ids = np.concatenate([tokenize(tf.constant(encoded[start:start + 1024])).numpy()
                              for start in range(0, len(encoded), 1024)])
  serve = teacher.signatures[features.SERVING_SIGNATURE]
  probabilities = _score_by_length(
      lambda batch: serve(text=batch)[features.PROBABILITIES_KEY].numpy(), encoded, token_ids,
      batch_size)
  return TeacherPass(encoded, token_ids, np.full(len(texts), -1, np.int64), probabilities,
                     time.perf_counter() - started)


def initialize_from_teacher(student: keras.Model, teacher) -> int:
  """Copies into the student every weight the teacher's export holds under the same name and
  shape: a student made of the teacher's lowest layers starts from the teacher's fine-tuned
  embeddings, those layers and its head, not from the pretrained checkpoint. Returns how many
  weights were copied (none for a student of another shape)."""
  by_name = {variable.name.rsplit(':', 1)[0]: variable for variable in teacher.variables}
  copied = 0
  for variable in student.weights:
    source = by_name.get(variable.path)
    if source is not None and tuple(source.shape) == tuple(variable.shape):
      variable.assign(source.numpy())
      copied += 1
  return copied


def student_dataset(token_ids: np.ndarray, targets: np.ndarray, batch_size: int,
                    for_training: bool, settings: TrainingSettings) -> tf.data.Dataset:
  """Batches of ({token_ids}, packed targets), shuffled each pass for training, in the same
  length buckets as the teacher's training."""
  dataset = tf.data.Dataset.from_tensor_slices(({features.TOKEN_IDS_KEY: token_ids}, targets))
  if for_training:
    dataset = dataset.shuffle(len(token_ids), seed=settings.seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(batch_size)
  if settings.length_buckets:
    dataset = data.bucket_by_length(dataset, batch_size, settings.length_buckets)
  return data.sharded_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def check_student_settings(setup: trainer.TrainingSetup) -> None:
  if setup.training.balance_classes:
    raise ValueError('distillation.student_training.balance_classes is not supported: the '
                     "teacher's probabilities already carry the class balance it learned.")


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """TFX Trainer entry point of the student. fn_args.base_model is the teacher's exported model,
  train_files and eval_files the raw examples; custom_config holds the student's 'model' and
  'training' settings and 'distillation' (temperature, label_weight, init_from_teacher)."""
  setup = trainer.prepare(fn_args)  # first: it creates the tf.distribute strategy
  check_student_settings(setup)  # before the teacher's pass, which takes minutes
  teacher = tf.saved_model.load(fn_args.base_model)
  train = teacher_pass(teacher, fn_args.train_files, TEACHER_BATCH_SIZE)
  train_student(setup, teacher, train, augmented_pass(setup, teacher, train),
                teacher_pass(teacher, fn_args.eval_files, TEACHER_BATCH_SIZE))


def augmented_pass(setup: trainer.TrainingSetup, teacher,
                   train: TeacherPass) -> Optional[TeacherPass]:
  """The teacher's pass over augmented copies of the training texts (models/augmentation.py),
  or None when distillation.augment_copies is 0."""
  settings = setup.fn_args.custom_config['distillation']
  if not settings['augment_copies']:
    return None
  texts = [text.decode('utf-8') for text in train.texts]
  neighbours = augmentation.word_neighbours(
      augmentation.token_embedding_matrix(teacher, len(setup.vocabulary)), setup.vocabulary,
      {word for text in texts for word in text.split()})
  augmented = augmentation.augment(texts, neighbours, settings['augment_copies'],
                                   settings['augment_replace_probability'],
                                   settings['augment_min_words'], seed=setup.training.seed)
  return teacher_pass_over_texts(teacher, setup.transform_output, augmented, TEACHER_BATCH_SIZE)


def train_student(setup: trainer.TrainingSetup, teacher, train: TeacherPass,
                  augmented: Optional[TeacherPass], evaluation: TeacherPass) -> None:
  """Trains and exports the student on the teacher's passes over the training split, its
  augmented copies (if any) and the eval split (benchmarks/distill.py reuses them for several
  seeds)."""
  check_student_settings(setup)
  fn_args = setup.fn_args
  distillation = fn_args.custom_config['distillation']
  temperature, label_weight = distillation['temperature'], distillation['label_weight']
  teacher_accuracy = float(np.mean(evaluation.probabilities.argmax(-1) == evaluation.label_ids))
  record = {'examples': len(train.label_ids), 'seconds': train.seconds,
            'augmented_examples': len(augmented.label_ids) if augmented else 0,
            'augmented_seconds': augmented.seconds if augmented else 0.0,
            'teacher_eval_accuracy': teacher_accuracy}
  logging.info("Teacher's probabilities: %s.", record)

  def dataset(split: TeacherPass, for_training: bool):
    targets = pack_targets(split.label_ids, soften(split.probabilities, temperature))
    return data.with_known_length(student_dataset(
        split.token_ids, targets, setup.global_batch_size, for_training, setup.training))

  train_dataset, steps_per_epoch, examples_per_epoch = dataset(
      TeacherPass.joined([train, augmented]) if augmented else train, for_training=True)
  eval_dataset, _, _ = dataset(evaluation, for_training=False)
  if strategy_lib.is_chief():
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TEACHER_PASS_FILE), 'w') as f:
      json.dump(record, f)

  def from_teacher(student: keras.Model) -> None:
    copied = initialize_from_teacher(student, teacher)
    logging.info("The student starts from %d of its %d weights from the teacher's.", copied,
                 len(student.weights))

  trainer.fit_and_export(
      setup, train_dataset, steps_per_epoch, examples_per_epoch, eval_dataset,
      initialize=from_teacher if distillation['init_from_teacher'] else None,
      loss=DistillationLoss(temperature, label_weight), metrics=metrics(),
      extra_hparams={'distillation.temperature': temperature,
                     'distillation.label_weight': label_weight,
                     'distillation.teacher_pass_seconds': train.seconds,
                     'distillation.augmented_examples': record['augmented_examples']})
