"""TextCleaningExampleGen: a Beam TFX component that turns raw text files into clean, split
tf.Examples, a cleaning report and the rejected rows.

It is a FileBasedExampleGen to TFX: its file-based driver runs before it, locally and on Vertex AI
/ Kubeflow (where the compiled step runs TFX's driver container), so the input files' fingerprint
(and, when the patterns use {SPAN}, the newest span) is part of the execution's properties: a
re-run over unchanged files is served from cache, a changed file or a new span is read again.
"""

import json
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, proto_utils

from components.cleaning import readers, rules, spans, transforms
from models.settings import SPAN_SPEC, IngestionSettings, as_custom_config, from_custom_config

EXAMPLES_KEY = 'examples'
REPORT_KEY = 'cleaning_report'
REJECTED_KEY = 'rejected_rows'
# Examples property of a span run: its SpanPlan (newest span, window, baseline) as JSON.
SPANS_KEY = 'spans'


class CleaningReport(types.Artifact):
  """JSON: rows read, kept per split, rejected per reason, modified per cleaning step."""
  TYPE_NAME = 'text_classifier.CleaningReport'


class RejectedRows(types.Artifact):
  """JSON Lines: every rejected row with its reason, source file, record number and raw text."""
  TYPE_NAME = 'text_classifier.RejectedRows'


class TextCleaningExampleGenSpec(types.ComponentSpec):
  PARAMETERS = {
      # Read by ExampleGen's driver, which fingerprints the matched files.
      'input_base': ExecutionParameter(type=str),
      'input_config': ExecutionParameter(type=example_gen_pb2.Input),
      'range_config': ExecutionParameter(type=str, optional=True),
      # IngestionSettings as JSON.
      'settings': ExecutionParameter(type=str),
  }
  INPUTS = {}
  OUTPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      REPORT_KEY: ChannelParameter(type=CleaningReport),
      REJECTED_KEY: ChannelParameter(type=RejectedRows),
  }


# Input split name meaning "one pool of files, split by a hash of the text".
HASH_SPLIT_INPUT = 'all'


def input_config_for(settings: IngestionSettings) -> example_gen_pb2.Input:
  """The splits TFX's driver resolves and fingerprints. With spans, TFX wants {SPAN} in every
  split: a fixed eval or golden file is read from the settings instead (and fingerprinted by
  SpanDriver)."""
  split = example_gen_pb2.Input.Split
  if settings.has_spans:
    return example_gen_pb2.Input(splits=[
        split(name='train', pattern=settings.train_pattern),
        *([split(name='eval', pattern=settings.eval_pattern)]
          if SPAN_SPEC.search(settings.eval_pattern) else [])])
  golden = ([split(name=rules.GOLDEN_SPLIT, pattern=settings.golden_pattern)]
            if settings.golden_pattern else [])
  if settings.eval_pattern:
    return example_gen_pb2.Input(splits=[
        split(name='train', pattern=settings.train_pattern),
        split(name='eval', pattern=settings.eval_pattern), *golden])
  return example_gen_pb2.Input(splits=[
      split(name=HASH_SPLIT_INPUT, pattern=settings.train_pattern), *golden])


def evidence_dir_for(report_uri: str) -> str:
  """<pipeline root>/<component>/failed/<execution id>: beside the component's output folders
  (<pipeline root>/<component>/<output>/<execution id>), which TFX deletes when the component
  fails."""
  output_dir, execution_id = os.path.split(report_uri)
  return os.path.join(os.path.dirname(output_dir), 'failed', execution_id)


def keep_evidence(report_path: str, rejected_path: str, evidence_dir: str) -> str:
  """Copies the report and the rejected rows to `evidence_dir`; says where, and how many rows."""
  tf.io.gfile.makedirs(evidence_dir)
  kept = []
  for path in (report_path, rejected_path):
    target = os.path.join(evidence_dir, os.path.basename(path))
    tf.io.gfile.copy(path, target, overwrite=True)
    kept.append(target)
  with tf.io.gfile.GFile(rejected_path) as f:
    rejected_rows = sum(1 for _ in f)
  rows = (f'{rejected_rows} rejected rows, each with its reason' if rejected_rows
          else 'empty: no row was rejected')
  return f'The cleaning report is kept at {kept[0]}; the rejected rows at {kept[1]} ({rows}).'


class Executor(base_beam_executor.BaseBeamExecutor):
  """Runs the ingestion Beam pipeline, then checks and logs the report."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
    del input_dict
    settings = from_custom_config(IngestionSettings, json.loads(exec_properties['settings']))
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties['input_config'], input_config)
    # Splits that must have rows; a span run also writes its older spans' (empty before the
    # first span).
    required_splits = output_splits = transforms.output_splits(settings)
    span_plan = None
    if settings.has_spans:
      span_plan = spans.plan(settings, int(exec_properties[example_gen_utils.SPAN_PROPERTY_NAME]))
      input_files = spans.input_files(settings, span_plan)
      output_splits = (*required_splits, *spans.older_span_splits(settings.window))
      logging.info('Spans: newest %d, training window %s, compared with %s.', span_plan.newest,
                   span_plan.window, span_plan.baseline)
    else:
      input_files = {
          '' if split.name == HASH_SPLIT_INPUT else split.name: readers.match_files(
              [os.path.join(exec_properties['input_base'], split.pattern)])
          for split in input_config.splits}
    for paths in input_files.values():
      readers.check_headers(paths, settings)

    examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
    report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
    rejected = artifact_utils.get_single_instance(output_dict[REJECTED_KEY])
    report_path = os.path.join(report.uri, transforms.REPORT_FILE)

    with self._make_beam_pipeline() as pipeline:
      transforms.run(pipeline, input_files, settings, examples.uri, report_path,
                     os.path.join(rejected.uri, transforms.REJECTED_FILE), output_splits,
                     span_plan.as_dict() if span_plan else None)

    summary = transforms.read_report(report_path)
    try:
      transforms.check_usable(summary, settings.max_eval_rejected_percent, required_splits)
    except transforms.IngestionError as error:
      kept = keep_evidence(report_path, os.path.join(rejected.uri, transforms.REJECTED_FILE),
                           evidence_dir_for(report.uri))
      raise transforms.IngestionError(f'{error}\n{kept}') from None
    examples.split_names = artifact_utils.encode_split_names(list(output_splits))
    if span_plan:
      examples.set_string_custom_property(SPANS_KEY, json.dumps(span_plan.as_dict()))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, 'tfrecords_gzip')
    for key in ('read', 'kept_total', 'rejected_total'):
      report.set_int_custom_property(key, summary[key])
    logging.info('%s', transforms.format_report(summary))


class SpanDriver(example_gen_driver.FileBasedDriver):
  """TFX's file-based driver, with one clear line for a span layout it would misread (a span
  folder without files, a {SPAN} that is not a number), and a fingerprint that also covers what
  a span run reads beside the newest span: the window's older spans and a fixed eval or golden
  file."""

  def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
    settings = from_custom_config(IngestionSettings, json.loads(exec_properties['settings']))
    if settings.has_spans:
      spans.spans_on_disk(settings.data_root, settings.train_pattern)
    exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info,
                                                      component_info)
    if settings.has_spans:
      span_plan = spans.plan(settings, exec_properties[example_gen_utils.SPAN_PROPERTY_NAME])
      older = spans.input_files(settings, span_plan)
      extra = [io_utils.generate_fingerprint(split, path) for split, paths in sorted(older.items())
               if split not in ('', 'train') for path in paths]
      exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = '\n'.join(
          [exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME], *extra])
    return exec_properties


class TextCleaningExampleGen(FileBasedExampleGen):
  """Raw text files (CSV/TSV/JSONL, optionally gzipped) -> cleaned, split tf.Examples.

  A FileBasedExampleGen by type only, for the Kubeflow V2 compiler, which gives that type TFX's
  span-resolving driver; its spec, executor and constructor are this module's."""
  SPEC_CLASS = TextCleaningExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
  DRIVER_CLASS = SpanDriver

  def __init__(self, settings: IngestionSettings, range_config: Optional[str] = None):
    base_beam_component.BaseBeamComponent.__init__(self, spec=TextCleaningExampleGenSpec(
        input_base=settings.data_root,
        input_config=input_config_for(settings),
        range_config=range_config,
        settings=json.dumps(as_custom_config(settings)),
        examples=types.Channel(type=standard_artifacts.Examples),
        cleaning_report=types.Channel(type=CleaningReport),
        rejected_rows=types.Channel(type=RejectedRows)))
