"""The run summary reads one run's outputs from a real ml-metadata store (recorded with TFX's own
helpers, or by LocalDagRunner), and says why a model was not blessed from a real TFMA
ValidationResult."""

import json
import os
from typing import Optional

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2
from tfx import v1 as tfx
from tfx.orchestration import metadata
from tfx.orchestration.portable import execution_publish_utils
from tfx.orchestration.portable.mlmd import context_lib, execution_lib
from tfx.tools.cli.handler.local_dag_runner_patcher import LocalDagRunnerPatcher

from components.cleaning.component import CleaningReport
from components.cleaning.transforms import REPORT_FILE
from components.described_schema import DescribedSchemaGen
from pipeline import local_runner, run_record, run_summary
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_eval_config

ACCURACY = 'sparse_categorical_accuracy'
TYPES = tfx.types.standard_artifacts


def make_config(tmp_path) -> PipelineConfig:
  return PipelineConfig(output_dir=str(tmp_path / 'tfx_output'),
                        serving_model_dir=str(tmp_path / 'serving_model'))


def write_evaluation(directory: str, config: PipelineConfig, accuracy: float,
                     baseline: Optional[float] = None) -> None:
  """An Evaluator output as TFMA writes it: eval_config.json, metrics and the validation result
  TFMA's own validator makes of them (`baseline`: the last blessed model's accuracy)."""
  eval_config = tfma.utils.update_eval_config_with_defaults(
      create_eval_config(config), has_baseline=baseline is not None, rubber_stamp=True)
  values = {}
  for key in tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs,
                                                               eval_config=eval_config):
    if key.model_name == tfma.BASELINE_KEY:
      if not key.is_diff:  # TFMA computes diffs for the candidate only
        values[key] = baseline
    else:
      values[key] = accuracy - baseline if key.is_diff else accuracy
  candidate = next(key.model_name for key in values if key.model_name != tfma.BASELINE_KEY)
  values[tfma.metrics.MetricKey('example_count', model_name=candidate,
                                example_weighted=False)] = 200.0
  os.makedirs(directory)
  eval_run = config_pb2.EvalRun(
      eval_config=eval_config, version=tfma.__version__,
      model_locations={spec.name: '/models/' + (spec.name or 'candidate')
                       for spec in eval_config.model_specs})
  with open(os.path.join(directory, 'eval_config.json'), 'w') as f:
    f.write(json_format.MessageToJson(eval_run))
  metrics = metrics_for_slice_pb2.MetricsForSlice(slice_key=metrics_for_slice_pb2.SliceKey())
  for key, value in values.items():
    metrics.metric_keys_and_values.add(key=key.to_proto()).value.double_value.value = value
  validation = metrics_validator.validate_metrics(((), values), eval_config)
  for name, record in (('metrics-00000-of-00001.tfrecord', metrics),
                       ('validations.tfrecord', validation)):
    with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
      writer.write(record.SerializeToString())


def connection(config: PipelineConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)


class Store:
  """Records runs in a real sqlite ml-metadata store, with the contexts LocalDagRunner makes."""

  def __init__(self, config: PipelineConfig, handle: metadata.Metadata):
    self.config = config
    self.handle = handle

  def contexts(self, run_id: str, node_id: str) -> list:
    name = self.config.pipeline_name
    return [context_lib.register_context_if_not_exists(self.handle, type_name, context_name)
            for type_name, context_name in (('pipeline', name), ('pipeline_run', run_id),
                                            ('node', f'{name}.{node_id}'))]

  def execute(self, run_id: str, node_id: str, outputs: dict) -> None:
    execution = execution_lib.prepare_execution(
        self.handle, metadata_store_pb2.ExecutionType(name=node_id),
        metadata_store_pb2.Execution.COMPLETE)
    execution_lib.put_execution(self.handle, execution, self.contexts(run_id, node_id),
                                output_artifacts=outputs)

  def reuse(self, run_id: str, node_id: str, outputs: dict) -> None:
    """A cached execution: it outputs artifacts an earlier run made, as the launcher records it."""
    execution = execution_lib.prepare_execution(
        self.handle, metadata_store_pb2.ExecutionType(name=node_id),
        metadata_store_pb2.Execution.NEW)
    execution_publish_utils.publish_cached_executions(
        self.handle, self.contexts(run_id, node_id), [execution], [outputs])


@pytest.fixture
def store(tmp_path):
  config = make_config(tmp_path)
  with metadata.Metadata(connection(config)) as handle:
    yield Store(config, handle)


def artifact(artifact_class, uri: str, **int_properties):
  result = artifact_class()
  result.uri = uri
  for name, value in int_properties.items():
    result.set_int_custom_property(name, value)
  return result


def record_run(store: Store, run_id: str, accuracy: float, baseline: Optional[float] = None,
               report=None, version: str = '100'):
  """One run: the cleaning report (reused if given), the Trainer's TensorBoard directory, the
  Evaluator's outputs and the Pusher's. Blessed, and pushed as `version`, if no check failed."""
  root = os.path.join(store.config.output_dir, run_id)
  if report is None:
    report = artifact(CleaningReport, os.path.join(root, 'cleaning_report'))
    os.makedirs(report.uri)
    with open(os.path.join(report.uri, REPORT_FILE), 'w') as f:
      json.dump({'run': run_id, 'read': 10, 'kept': {'train': 8, 'eval': 2}, 'kept_total': 10,
                 'rejected': {}, 'rejected_total': 0}, f)
    store.execute(run_id, 'TextCleaningExampleGen', {'cleaning_report': [report]})
  else:
    store.reuse(run_id, 'TextCleaningExampleGen', {'cleaning_report': [report]})
  model_run = artifact(TYPES.ModelRun, os.path.join(root, 'run'))
  store.execute(run_id, 'Trainer', {'model_run': [model_run]})
  evaluation = artifact(TYPES.ModelEvaluation, os.path.join(root, 'evaluation'))
  write_evaluation(evaluation.uri, store.config, accuracy, baseline)
  # The Evaluator blesses exactly when the validation passed.
  blessed = int(tfma.load_validation_result(evaluation.uri).validation_ok)
  store.execute(run_id, 'Evaluator', {
      'evaluation': [evaluation],
      'blessing': [artifact(TYPES.ModelBlessing, os.path.join(root, 'blessing'), blessed=blessed)]})
  pushed = artifact(TYPES.PushedModel, os.path.join(root, 'pushed'), pushed=blessed)
  if blessed:
    destination = os.path.join(store.config.push_destination, version)
    pushed.set_string_custom_property('pushed_destination', destination)
    os.makedirs(destination)
  store.execute(run_id, 'Pusher', {'pushed_model': [pushed]})
  return report


def run_dir(config: PipelineConfig, run_id: str) -> str:
  return os.path.join(config.output_dir, run_id, 'run')


def test_summary_reports_its_own_run_not_the_newest_artifacts(store):
  report = record_run(store, 'first', accuracy=0.90)
  # This run reuses the first run's cleaning and fails the floor; a later run then is blessed.
  record_run(store, 'this-run', accuracy=0.71, report=report)
  record_run(store, 'later', accuracy=0.92, baseline=0.90, version='102')

  config = store.config
  summary = run_record.read_run(config, 'this-run')
  assert summary.run_id == 'this-run'
  assert summary.model.model_run_dir == run_dir(config, 'this-run')
  assert summary.cleaning['run'] == 'first'  # what its cached execution output
  assert summary.model.metrics['overall'][ACCURACY] == pytest.approx(0.71)
  assert summary.model.blessed is False and summary.model.pushed_to is None
  text = run_summary.format_summary(summary, 60.0)
  assert f"TensorBoard: tensorboard --logdir {run_dir(config, 'this-run')}" in text
  assert 'later' not in text

  newest = run_record.read_run(config)
  assert newest.run_id == 'later' and newest.model.blessed is True
  assert newest.model.pushed_to == os.path.join(config.push_destination, '102')
  assert newest.model.model_run_dir == run_dir(config, 'later')
  assert newest.model.metrics['overall'][ACCURACY] == pytest.approx(0.92)


def test_no_summary_for_an_unknown_run_or_a_missing_store(tmp_path):
  config = make_config(tmp_path)
  assert run_record.read_run(config, 'never-ran') is None
  assert not os.path.exists(config.metadata_path)  # looking does not create a store
  with metadata.Metadata(connection(config)) as handle:
    record_run(Store(config, handle), 'first', accuracy=0.90)
  assert run_record.read_run(config, 'never-ran') is None
  assert run_record.read_run(config, 'first').model.blessed is True


def test_not_blessed_names_the_failed_floor_with_values(store):
  record_run(store, 'first', accuracy=0.71)
  summary = run_record.read_run(store.config, 'first')
  assert summary.model.not_blessed_because == [f'{ACCURACY} 0.7100 < floor 0.7500']
  text = run_summary.format_summary(summary, 60.0)
  assert f'Blessed: False, because {ACCURACY} 0.7100 < floor 0.7500' in text
  assert 'Pushed to: not pushed; none pushed yet' in text


def test_not_blessed_names_the_regression_and_the_version_that_stays_live(store):
  destination = store.config.push_destination
  record_run(store, 'first', accuracy=0.83, version='100')
  os.makedirs(os.path.join(destination, '99'))
  os.makedirs(os.path.join(destination, 'tmp-copy'))
  record_run(store, 'second', accuracy=0.80, baseline=0.83)
  summary = run_record.read_run(store.config, 'second')
  assert summary.model.not_blessed_because == [
      f"{ACCURACY} 0.8000 is 0.0300 below the last blessed model's 0.8300 (tolerance 0.0100)"]
  text = run_summary.format_summary(summary, 60.0)
  assert f"Pushed to: not pushed; {os.path.join(destination, '100')} stays live" in text


def test_local_runner_names_its_run_and_cached_executions_count(tmp_path):
  """A real LocalDagRunner run of a one-node pipeline (no training), then a cached re-run."""
  config = make_config(tmp_path)

  def one_node_pipeline():
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=[DescribedSchemaGen(label_names_json='["0", "1"]')],
        enable_cache=True, metadata_connection_config=connection(config))

  # `tfx pipeline create` patches LocalDagRunner.run out: no run, no summary.
  with LocalDagRunnerPatcher().patch():
    local_runner.runner('patched').run(one_node_pipeline())
  assert run_record.read_run(config, 'patched') is None

  local_runner.runner('run-1').run(one_node_pipeline())
  local_runner.runner('run-2').run(one_node_pipeline())
  outputs = {}
  with metadata.Metadata(connection(config)) as handle:
    for run_id in ('run-1', 'run-2'):
      context = handle.store.get_context_by_type_and_name(run_record.PIPELINE_RUN_CONTEXT,
                                                          run_id)
      [execution] = handle.store.get_executions_by_context(context.id)
      schema = run_record.run_outputs(handle.store, context)[
          ('DescribedSchemaGen', TYPES.Schema.TYPE_NAME)]
      outputs[run_id] = (execution.last_known_state, schema.id)
  assert outputs['run-1'][0] == metadata_store_pb2.Execution.COMPLETE
  assert outputs['run-2'] == (metadata_store_pb2.Execution.CACHED, outputs['run-1'][1])
  assert run_record.read_run(config, 'run-2').run_id == 'run-2'


def test_the_most_confident_mistakes_are_chosen_per_actual_class():
  rows = [('a', 'neg'), ('b', 'neg'), ('c', 'neg'), ('d', 'pos'), ('e', 'pos'), ('f', 'other')]
  probabilities = np.array([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2], [0.6, 0.4], [0.95, 0.05],
                            [0.5, 0.5]])
  mistakes = run_record.most_confident_mistakes(rows, probabilities, ['neg', 'pos'], per_class=1)
  # One per actual class, surest first; right answers and unknown labels are no mistakes.
  assert [(m['text'], m['actual'], m['predicted']) for m in mistakes] == [
      ('e', 1, 0), ('a', 0, 1)]
  assert mistakes[0]['probability'] == pytest.approx(0.95)
