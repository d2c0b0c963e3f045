"""Distillation on tiny models: the teacher's pass keeps every example's probabilities in place,
the loss mixes labels and teacher as configured, and a student trained only on the teacher's
probabilities learns to predict what the teacher predicts on texts neither has seen."""

import dataclasses
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.compiler import compiler

from models import augmentation, classifier, data, distillation, features, trainer
from models.settings import (DistillationSettings, ModelSettings, TrainingSettings,
                             as_custom_config)
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from tests.helpers import MAX_SEQ_LENGTH, TEXTS, TINY_MODEL

WORDS = sorted({word for text in TEXTS for word in text.split()})


def write_raw_examples(directory, split: str, texts, labels) -> None:
  """Texts as the ingestion writes them: gzipped tf.Examples under Split-<split>."""
  os.makedirs(os.path.join(directory, f'Split-{split}'), exist_ok=True)
  path = os.path.join(directory, f'Split-{split}', 'data_tfrecord-00000-of-00001.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for text, label in zip(texts, labels, strict=True):
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
          features.LABEL_KEY: tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[label.encode()])),
      })).SerializeToString())


def served_probabilities(model_dir: str, texts) -> np.ndarray:
  serve = tf.saved_model.load(model_dir).signatures[features.SERVING_SIGNATURE]
  return serve(text=tf.constant(texts))[features.PROBABILITIES_KEY].numpy()


def word_combinations(count: int, seed: int):
  rng = random.Random(seed)
  return [' '.join(rng.choices(WORDS, k=rng.randint(1, 5))) for _ in range(count)]


def test_soften_keeps_the_ranking_and_flattens_with_temperature():
  probabilities = np.array([[0.9, 0.1], [0.3, 0.7]], np.float32)
  np.testing.assert_allclose(distillation.soften(probabilities, 1.0), probabilities, rtol=1e-5)
  softened = distillation.soften(probabilities, 4.0)
  assert (softened.argmax(-1) == probabilities.argmax(-1)).all()
  assert softened[0, 0] < 0.9 and softened[0, 0] > 0.5


def test_the_loss_mixes_the_labels_and_the_teacher_as_configured():
  student = np.array([[0.8, 0.2]], np.float32)
  targets = distillation.pack_targets(np.array([1]), np.array([[0.6, 0.4]]))
  hard_only = distillation.DistillationLoss(temperature=2.0, label_weight=1.0)(targets, student)
  np.testing.assert_allclose(hard_only, -np.log(0.2), rtol=1e-5)
  soft_only = distillation.DistillationLoss(temperature=1.0, label_weight=0.0)(targets, student)
  np.testing.assert_allclose(soft_only, -(0.6 * np.log(0.8) + 0.4 * np.log(0.2)), rtol=1e-5)
  half = distillation.DistillationLoss(temperature=1.0, label_weight=0.5)(targets, student)
  np.testing.assert_allclose(half, (-np.log(0.2) + float(soft_only)) / 2, rtol=1e-5)


def test_a_text_without_a_label_learns_from_the_teacher_alone():
  student = np.array([[0.8, 0.2], [0.8, 0.2]], np.float32)
  targets = distillation.pack_targets(np.array([-1, 1]), np.array([[0.6, 0.4], [0.6, 0.4]]))
  loss = distillation.DistillationLoss(temperature=1.0, label_weight=0.5)
  soft = -(0.6 * np.log(0.8) + 0.4 * np.log(0.2))
  np.testing.assert_allclose(loss.call(targets, student),
                             [soft, (-np.log(0.2) + soft) / 2], rtol=1e-5)
  accuracy = distillation.LabelledAccuracy()
  accuracy.update_state(distillation.pack_targets(np.array([-1, 0, 1]), np.ones((3, 2)) / 2),
                        np.array([[0.9, 0.1]] * 3, np.float32))
  assert float(accuracy.result()) == 0.5  # the two labelled texts: one right, one wrong


def test_the_teacher_pass_keeps_each_example_with_its_probabilities(tiny_model_dir, tmp_path):
  texts = word_combinations(300, seed=1)  # lengths vary, so the pass reorders them internally
  write_raw_examples(tmp_path, 'train', texts, ['neg'] * len(texts))
  result = distillation.teacher_pass(tf.saved_model.load(tiny_model_dir),
                                     [str(tmp_path / 'Split-train' / '*')], batch_size=32)
  np.testing.assert_allclose(result.probabilities, served_probabilities(tiny_model_dir, texts),
                             atol=1e-5)
  assert result.token_ids.shape[0] == len(texts) and (result.label_ids == 0).all()
  assert result.seconds > 0


def test_a_student_learns_the_teachers_predictions(tiny_model_dir, tiny_transform, tmp_path):
  _, transform_output = tiny_transform
  # The true labels say nothing (all 'neg') and weigh nothing: all the student knows of the task
  # is the teacher's probabilities.
  train_texts, held_out = word_combinations(600, seed=2), word_combinations(200, seed=3)
  write_raw_examples(tmp_path / 'examples', 'train', train_texts, ['neg'] * len(train_texts))
  write_raw_examples(tmp_path / 'examples', 'eval', held_out[:50], ['neg'] * 50)
  student = ModelSettings(architecture='transformer', embedding_dim=16, num_layers=1,
                          num_heads=2, intermediate_dim=32, dropout=0.0)
  training = TrainingSettings(learning_rate=5e-3, batch_size=32, epochs=15, max_steps=0,
                              steps_per_evaluation=0, early_stopping_patience=15, seed=7)
  custom_config = {'model': as_custom_config(student), 'training': as_custom_config(training),
                   'distillation': {'temperature': 1.0, 'label_weight': 0.0,
                                    'init_from_teacher': False, 'augment_copies': 1,
                                    'augment_replace_probability': 0.5, 'augment_min_words': 3}}
  distillation.run_fn(trainer.local_fn_args(
      os.path.dirname(transform_output.transform_savedmodel_dir), str(tmp_path / 'examples'),
      str(tmp_path / 'student'), custom_config, base_model=tiny_model_dir))

  teacher = served_probabilities(tiny_model_dir, held_out).argmax(-1)
  learned = served_probabilities(str(tmp_path / 'student' / 'serving'), held_out).argmax(-1)
  majority = max(np.mean(teacher), 1 - np.mean(teacher))  # agreement of a constant guess
  agreement = float(np.mean(teacher == learned))
  assert agreement >= 0.9 and agreement > majority + 0.1, (agreement, majority)
  with open(tmp_path / 'student' / 'logs' / distillation.TEACHER_PASS_FILE) as f:
    record = json.load(f)
  assert record['examples'] == len(train_texts)  # one pass, over the training split
  # ... and one over a copy of each text of 3 words or more.
  assert record['augmented_examples'] == sum(len(text.split()) >= 3 for text in train_texts)


def test_augmented_copies_replace_words_by_their_embedding_neighbours():
  vocabulary = ['[PAD]', 'good', 'great', 'film', 'movie', '##s', '!']
  embeddings = np.array([[0, 0], [1, 0.1], [1, 0.2], [0.1, 1], [0.2, 1], [1, 1], [-1, -1]],
                        np.float32)
  neighbours = augmentation.word_neighbours(embeddings, vocabulary, ['Good', 'film', 'unknown'])
  assert set(neighbours) == {'good', 'film'}  # whole-word tokens only, looked up lower-cased
  assert neighbours['good'][0] == 'great' and neighbours['film'][0] == 'movie'
  assert not {'##s', '!', '[PAD]'} & {word for words in neighbours.values() for word in words}
  texts = ['a Good film today', 'good film']
  kept = augmentation.augment(texts, neighbours, copies=3, replace_probability=0.0,
                              min_words=3, seed=0)
  assert kept == ['a Good film today'] * 3  # the two-word text is too short to copy
  changed = augmentation.augment(texts, neighbours, copies=2, replace_probability=1.0,
                                 min_words=3, seed=0)
  for text in changed:
    first, second, third, fourth = text.split()
    assert (first, fourth) == ('a', 'today')  # words without neighbours stay
    assert second in neighbours['good'] and third in neighbours['film']


def test_the_teacher_pass_over_texts_scores_them_as_served(tiny_model_dir, tiny_transform):
  _, transform_output = tiny_transform
  texts = word_combinations(100, seed=4)
  result = distillation.teacher_pass_over_texts(tf.saved_model.load(tiny_model_dir),
                                                transform_output, texts, batch_size=16)
  np.testing.assert_allclose(result.probabilities, served_probabilities(tiny_model_dir, texts),
                             atol=1e-5)
  assert (result.label_ids == -1).all() and result.token_ids.shape[0] == len(texts)


def node_ids(config: PipelineConfig) -> list:
  return [node.id for node in create_pipeline(config).components]


@pytest.mark.parametrize('push, pushers', [
    ('both', {'Pusher': 'sst2', 'StudentPusher': 'sst2_student'}),
    ('student', {'StudentPusher': 'sst2'}),
    ('teacher', {'Pusher': 'sst2'}),
])
def test_the_stage_is_added_when_switched_on_and_pushes_as_configured(tmp_path, push, pushers):
  off = PipelineConfig(serving_model_dir=str(tmp_path))
  assert not [node for node in node_ids(off) if node.startswith('Student')]
  on = dataclasses.replace(off, distillation=DistillationSettings(enabled=True, push=push))
  nodes = {node.id: node for node in create_pipeline(on).components}
  assert {'StudentTrainer', 'StudentEvaluator', 'latest_blessed_student_resolver'} <= set(nodes)
  destinations = {node_id: os.path.basename(json.loads(
      node.exec_properties['push_destination'])['filesystem']['base_directory'])
                  for node_id, node in nodes.items() if node_id.endswith('Pusher')}
  assert destinations == pushers
  # The student starts from the teacher's exported model and learns from the raw examples.
  student = nodes['StudentTrainer']
  assert student.inputs['base_model'] is nodes['Trainer'].outputs['model']
  assert student.inputs['examples'] is nodes['TextCleaningExampleGen'].outputs['examples']


def test_each_evaluator_compares_with_its_own_kind_of_model():
  """A teacher's baseline is the last blessed teacher, a student's the last blessed student: the
  resolvers read only their own trainer's models and evaluator's blessings."""
  config = PipelineConfig(distillation=DistillationSettings(enabled=True))
  ir = compiler.Compiler().compile(create_pipeline(config))
  nodes = {node.pipeline_node.node_info.id: node.pipeline_node for node in ir.nodes}
  for resolver, producers in (
      ('latest_blessed_model_resolver', {'Trainer', 'Evaluator'}),
      ('latest_blessed_student_resolver', {'StudentTrainer', 'StudentEvaluator'})):
    queried = {query.name.field_value.string_value.split('.', 1)[1]
               for spec in nodes[resolver].inputs.inputs.values() for channel in spec.channels
               for query in channel.context_queries if query.type.name == 'node'}
    assert queried == producers, resolver


def test_a_pretrained_student_needs_a_pretrained_teacher():
  with pytest.raises(ValueError, match='pretrained distillation student needs a pretrained'):
    PipelineConfig(model=TINY_MODEL, distillation=DistillationSettings(enabled=True))
  config = PipelineConfig(model=TINY_MODEL, distillation=DistillationSettings(
      enabled=True, student=dataclasses.replace(TINY_MODEL, num_layers=1)))
  assert 'StudentTrainer' in node_ids(config)


def test_a_student_of_the_teachers_shape_starts_as_the_teacher(tiny_model_dir, tiny_transform):
  _, transform_output = tiny_transform
  student = classifier.build_classifier(TINY_MODEL, len(data.vocabulary(transform_output)),
                                        MAX_SEQ_LENGTH, num_classes=2)
  assert distillation.initialize_from_teacher(
      student, tf.saved_model.load(tiny_model_dir)) == len(student.weights)
  token_ids = transform_output.transform_raw_features(
      {features.TEXT_KEY: tf.constant(TEXTS)}, drop_unused_features=True)[features.TOKEN_IDS_KEY]
  np.testing.assert_allclose(student({features.TOKEN_IDS_KEY: token_ids}).numpy(),
                             served_probabilities(tiny_model_dir, TEXTS), atol=1e-5)
