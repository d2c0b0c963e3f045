"""The whole pipeline on a slice of SST-2 with LocalDagRunner, three times: a pushed model that
serves raw text in a fresh process; a re-run served from cache up to the Trainer; a run with the
Tuner on and warm start, whose Trainer takes the Tuner's best values and starts from the first
run's blessed model."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import history, local_runner, report, run_record, run_summary
from components import atomic_pusher
from components.described_schema import described_schema
from models.settings import DistillationSettings, TuningSettings
from serving import model_config, push_record
from tests.helpers import (CACHED_ON_RERUN, latest_executions, open_in_chromium, open_store,
                           small_config)

COMPONENTS = ('TextCleaningExampleGen', 'StatisticsGen', 'DescribedSchemaGen',
              'ExampleValidator', 'DataGate', 'Transform', 'Trainer',
              'latest_blessed_model_resolver', 'Evaluator', 'Pusher')
# What the third run tunes: values that keep the weights' shapes (it also warm-starts).
TUNING_SEARCH_SPACE = (('model.dropout', (0.0, 0.2)), ('training.learning_rate', (1e-3, 3e-3)))

LOAD_AND_PREDICT = '''
import json, sys
import tensorflow_text  # registers the TF Text ops the serving graph uses
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
outputs = model.signatures['serving_default'](
    text=tf.constant(['a gorgeous , witty , seductive movie .', 'dull and lifeless .']))
print(json.dumps({key: value.numpy().tolist() for key, value in outputs.items()},
                 default=lambda b: b.decode()))
'''

# Whole pipeline runs: minutes each (`pytest -m 'not slow'` skips them).
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def runs(sst2_slice, tmp_path_factory):
  config = small_config(sst2_slice, str(tmp_path_factory.mktemp('e2e')))
  tfx.orchestration.LocalDagRunner().run(local_runner.build(config))
  first = latest_executions(config)
  tfx.orchestration.LocalDagRunner().run(local_runner.build(config))
  second = latest_executions(config)
  tuned_config = dataclasses.replace(
      config, training=dataclasses.replace(config.training, warm_start=True),
      tuning=TuningSettings(enabled=True, max_trials=2, epochs_per_trial=1,
                            search_space=TUNING_SEARCH_SPACE))
  tfx.orchestration.LocalDagRunner().run(local_runner.build(tuned_config))
  return config, first, second, latest_executions(config)


def artifact_ids(store, execution, key: str, event_type) -> list:
  """Ids of the artifacts `execution` read (or wrote) under `key`."""
  return [event.artifact_id for event in store.get_events_by_execution_ids([execution.id])
          if event.type == event_type and event.path.steps[0].key == key]


def test_every_component_executes(runs):
  _, first, _, _ = runs
  for node_id in COMPONENTS:
    assert first[node_id].last_known_state == metadata_store_pb2.Execution.COMPLETE, node_id


def test_model_is_pushed_and_serves_raw_text_in_a_fresh_process(runs):
  config, _, _, _ = runs
  summary = run_record.read_run(config)
  assert summary.model.blessed is True
  assert summary.model.pushed_to and summary.model.pushed_to.startswith(config.push_destination)
  assert model_config.versions(config.push_destination)
  # Nothing else beside the versions but the push records TF Serving ignores.
  assert set(os.listdir(config.push_destination)) == {
      str(v) for v in model_config.versions(config.push_destination)} | {push_record.RECORD_NAME}

  result = subprocess.run([sys.executable, '-c', LOAD_AND_PREDICT, summary.model.pushed_to],
                          capture_output=True, text=True, check=True)
  outputs = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(outputs['probabilities']) == 2
  for row in outputs['probabilities']:
    assert len(row) == 2 and abs(sum(row) - 1.0) < 1e-4
  assert set(outputs['label']) <= {'negative', 'positive'}  # the dataset's display names


def test_summary_reports_metrics_and_tensorboard(runs):
  config, _, _, _ = runs
  summary = run_record.read_run(config)
  assert summary.cleaning['read'] == 3200
  overall = summary.model.metrics['overall']
  assert overall['example_count'] == 200
  assert 0.0 <= overall['sparse_categorical_accuracy'] <= 1.0
  assert any(name.startswith('length_bucket:') for name in summary.model.metrics)
  assert os.path.isdir(summary.model.model_run_dir)
  assert summary.model.latency_ms > 0  # timed on eval texts through serving_default
  text = run_summary.format_summary(summary, 60.0)
  assert f'tensorboard --logdir {summary.model.model_run_dir}' in text
  assert f'Serving: {summary.model.latency_ms:.2f} ms per text at batch 1' in text


def test_the_run_report_renders_in_chromium_with_its_charts(runs):
  config, _, _, _ = runs
  summary = run_record.read_run(config)  # the third run: it has a baseline to compare with
  path = report.write_report(summary, config.pipeline_name, config.pipeline_root,
                             history.read_history(config))
  assert path == report.report_path(config.pipeline_root, summary.run_id)
  page = open_in_chromium(path)
  assert page['console_errors'] == []
  # Label and length distributions, confusion matrix, reliability, slices, training curves,
  # the history.
  assert len(page['image_widths']) == 6 and all(page['image_widths']), page['image_widths']
  assert all(alt.strip() for alt in page['image_alts']), page['image_alts']
  for text in ('Data', 'read 3,200', 'kept: train', 'TFDV statistics', 'TFDV anomalies',
               'negative', 'positive', 'Against the last blessed model', 'Training',
               'tensorboard --logdir', 'ms per text at batch 1', 'History of this pipeline',
               'Classes most often confused', 'The most confident mistakes'):
    assert text in page['text'], text
  assert 'classId' not in page['text']


def test_rerun_is_served_from_cache_up_to_the_trainer(runs):
  _, first, second, _ = runs
  for node_id in CACHED_ON_RERUN:
    assert second[node_id].last_known_state == metadata_store_pb2.Execution.CACHED, node_id
    assert second[node_id].id != first[node_id].id


def test_rerun_does_not_push_the_same_model_again(runs):
  config, first, second, _ = runs
  store = open_store(config)

  def pushed_model(executions):
    [artifact_id] = artifact_ids(store, executions['Pusher'], 'pushed_model',
                                 metadata_store_pb2.Event.OUTPUT)
    return store.get_artifacts_by_id([artifact_id])[0].custom_properties

  first_push, second_push = pushed_model(first), pushed_model(second)
  assert first_push['pushed'].int_value == 1 and second_push['pushed'].int_value == 0
  assert (second_push[atomic_pusher.ALREADY_LIVE_KEY].string_value
          == first_push['pushed_destination'].string_value)


def test_warm_started_trainer_starts_from_the_last_blessed_model(runs):
  config, first, _, third = runs
  store = open_store(config)
  first_model = artifact_ids(store, first['Trainer'], 'model', metadata_store_pb2.Event.OUTPUT)
  assert third['Trainer'].last_known_state == metadata_store_pb2.Execution.COMPLETE
  assert third['Trainer'].id != first['Trainer'].id
  assert artifact_ids(store, third['Trainer'], 'base_model',
                      metadata_store_pb2.Event.INPUT) == first_model


def test_data_gate_stops_the_run_before_training_on_unexpected_labels(sst2_slice, tmp_path):
  config = small_config(sst2_slice, str(tmp_path))
  # Accept any label at ingestion, then feed a label a curated schema does not allow.
  schema_file = tmp_path / 'curated_schema.pbtxt'
  schema_file.write_text(text_format.MessageToString(described_schema(['0', '1'])))
  config = dataclasses.replace(
      config, schema_file=str(schema_file),
      ingestion=dataclasses.replace(config.ingestion, data_root=str(tmp_path), label_names=(),
                                    label_display_names=()))
  for name in ('train.tsv', 'validation.tsv'):
    with open(os.path.join(sst2_slice, name), encoding='utf-8') as f:
      lines = f.readlines()[:200]
    lines.append('a row with a label from elsewhere \tneutral\n')
    with open(tmp_path / name, 'w', encoding='utf-8') as f:
      f.writelines(lines)
  with pytest.raises(RuntimeError, match=r"(?s)label.*Unexpected string values"):
    tfx.orchestration.LocalDagRunner().run(local_runner.build(config))
  executions = latest_executions(config)
  assert executions['DataGate'].last_known_state == metadata_store_pb2.Execution.FAILED
  assert 'Transform' not in executions and 'Trainer' not in executions


def test_tuner_searches_and_the_trainer_takes_its_best_values(runs):
  config, _, _, third = runs
  store = open_store(config)
  assert third['Tuner'].last_known_state == metadata_store_pb2.Execution.COMPLETE
  best = artifact_ids(store, third['Tuner'], 'best_hyperparameters',
                      metadata_store_pb2.Event.OUTPUT)
  assert artifact_ids(store, third['Trainer'], 'hyperparameters',
                      metadata_store_pb2.Event.INPUT) == best
  [artifact] = store.get_artifacts_by_id(best)
  with open(os.path.join(artifact.uri, 'best_hyperparameters.txt')) as f:
    values = json.load(f)['values']
  for name, candidates in TUNING_SEARCH_SPACE:
    assert values[name] in candidates, name


@pytest.fixture(scope='module')
def distilled_runs(sst2_slice, tmp_path_factory):
  """Two runs with distillation on (a from-scratch teacher and a smaller student learning from the
  training split and one augmented copy of it, both pushed); the second changes only the
  distillation's temperature."""
  config = small_config(sst2_slice, str(tmp_path_factory.mktemp('distilled')))
  student = dataclasses.replace(config.model, embedding_dim=16, intermediate_dim=32)
  config = dataclasses.replace(config, distillation=DistillationSettings(
      enabled=True, student=student, student_training=dataclasses.replace(config.training),
      augment_copies=1))
  tfx.orchestration.LocalDagRunner().run(local_runner.build(config))
  first = latest_executions(config)
  config = dataclasses.replace(config, distillation=dataclasses.replace(config.distillation,
                                                                        temperature=3.0))
  tfx.orchestration.LocalDagRunner().run(local_runner.build(config))
  return config, first, latest_executions(config)


def test_distillation_pushes_teacher_and_student_that_serve_raw_text(distilled_runs):
  config, first, _ = distilled_runs
  for node_id in ('StudentTrainer', 'StudentEvaluator', 'StudentPusher'):
    assert first[node_id].last_known_state == metadata_store_pb2.Execution.COMPLETE, node_id
  summary = run_record.read_run(config)  # the second run: the teacher was live already
  kept = summary.cleaning['kept']['train']
  assert summary.student is not None and summary.teacher_pass['examples'] == kept
  assert summary.student.megabytes < summary.model.megabytes
  assert summary.student.latency_ms > 0 and summary.model.latency_ms > 0
  assert os.path.dirname(summary.model.already_live) == config.push_destination
  for model in (summary.model, summary.student):
    assert model.blessed is True
    result = subprocess.run([sys.executable, '-c', LOAD_AND_PREDICT,
                             model.pushed_to or model.already_live],
                            capture_output=True, text=True, check=True)
    labels = json.loads(result.stdout.strip().splitlines()[-1])['label']
    assert set(labels) <= {'negative', 'positive'}  # the dataset's display names
  assert os.path.dirname(summary.student.pushed_to) == config.student_push_destination
  text = run_summary.format_summary(summary, 60.0)
  assert f"Teacher's probabilities over {kept} training examples: computed once" in text
  augmented = summary.teacher_pass['augmented_examples']
  assert 0 < augmented <= kept and f'over {augmented} augmented copies' in text
  assert (f'latency p50, 1 text (ms)   {summary.model.latency_ms:>8.2f} '
          f'{summary.student.latency_ms:>8.2f}') in text
  assert 'Student Pushed to: ' + summary.student.pushed_to in text


def test_a_distillation_change_reruns_only_the_student(distilled_runs):
  _, first, second = distilled_runs
  for node_id in CACHED_ON_RERUN:  # the teacher's Trainer included
    assert second[node_id].last_known_state == metadata_store_pb2.Execution.CACHED, node_id
  assert second['StudentTrainer'].last_known_state == metadata_store_pb2.Execution.COMPLETE
  assert second['StudentTrainer'].id != first['StudentTrainer'].id
