"""Every run of a pipeline, read from its ml-metadata store: what a scheduled pipeline's report
shows over time. For each run: the spans it read and trained on, the rows kept and rejected, the
drift measured against the previous span with its thresholds, the candidate's and the live
model's accuracy on the same eval split, blessed, and the version pushed, so every served version
can be traced to the spans it was trained on.

Everything comes from ml-metadata: the runs are its `pipeline_run` contexts, the figures are
properties the components set on their artifacts (the ingestion's counts and spans, the
Evaluator's accuracies, the Pusher's version) and the DistributionValidator's anomalies, which a
run stopped by its drift gate still has.
"""

import dataclasses
import datetime
import json
from typing import Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.class_checked_evaluator import ACCURACY_KEY, BASELINE_ACCURACY_KEY
from components.cleaning.component import SPANS_KEY, CleaningReport
from components.drift_gate import measured_drift
from pipeline import pipeline
from pipeline.config import PipelineConfig
from pipeline.run_record import (EXAMPLE_GEN_ID, NODE_CONTEXT, PIPELINE_RUN_CONTEXT, float_property,
                                 int_property, open_store, run_outputs, string_property)



@dataclasses.dataclass
class PastRun:
  run_id: str
  started: datetime.datetime
  outcome: str  # trained | served from cache | stopped at <node>
  spans: Optional[dict]  # SpanPlan: newest, window, baseline (None without spans)
  read: Optional[int]
  kept: Optional[int]
  rejected: Optional[int]
  drift: List[dict]  # each measure against its threshold (drift_gate.measured_drift); [] if none
  accuracy: Optional[float]  # the candidate's, on the run's eval split
  live_accuracy: Optional[float]  # the last blessed model's, on the same examples
  blessed: Optional[bool]
  pushed_version: Optional[str]  # the version this run pushed


def _node_ids(store) -> Dict[int, str]:
  """Execution id -> its node's id, for every execution in the store: read once for all runs."""
  return {execution.id: node.name.split('.', 1)[1]  # '<pipeline>.<node id>'
          for node in store.get_contexts_by_type(NODE_CONTEXT)
          for execution in store.get_executions_by_context(node.id)}


def _outcome(store, context, node_ids: Dict[int, str]) -> str:
  run = [(node_ids[e.id], e.last_known_state) for e in store.get_executions_by_context(context.id)
         if e.id in node_ids]
  failed = [node for node, state in run if state == metadata_store_pb2.Execution.FAILED]
  if failed:
    return f'stopped at {failed[0]}'
  trainer = [state for node, state in run if node == pipeline.TRAINER_ID]
  if trainer == [metadata_store_pb2.Execution.CACHED]:
    return 'served from cache'
  return 'trained' if trainer else 'not trained'


def _past_run(store, context, node_ids: Dict[int, str]) -> PastRun:
  outputs = run_outputs(store, context)
  types = tfx.types.standard_artifacts
  examples = outputs.get((EXAMPLE_GEN_ID, types.Examples.TYPE_NAME))
  spans_text = string_property(examples, SPANS_KEY)
  spans = json.loads(spans_text) if spans_text else None
  report = outputs.get((EXAMPLE_GEN_ID, CleaningReport.TYPE_NAME))
  anomalies = outputs.get(('DistributionValidator', types.ExampleAnomalies.TYPE_NAME))
  blessing = outputs.get((pipeline.EVALUATOR_ID, types.ModelBlessing.TYPE_NAME))
  pushed = outputs.get((pipeline.PUSHER_ID, types.PushedModel.TYPE_NAME))
  blessed = int_property(blessing, 'blessed')
  return PastRun(
      run_id=context.name,
      started=datetime.datetime.fromtimestamp(context.create_time_since_epoch / 1000),
      outcome=_outcome(store, context, node_ids),
      spans=spans,
      read=int_property(report, 'read'),
      kept=int_property(report, 'kept_total'),
      rejected=int_property(report, 'rejected_total'),
      drift=(measured_drift(anomalies.uri)
             if anomalies is not None and spans and spans['baseline'] is not None else []),
      accuracy=float_property(blessing, ACCURACY_KEY),
      live_accuracy=float_property(blessing, BASELINE_ACCURACY_KEY),
      blessed=None if blessed is None else bool(blessed),
      pushed_version=(string_property(pushed, 'pushed_version')
                      if int_property(pushed, 'pushed') else None))


def read_history(config: PipelineConfig) -> List[PastRun]:
  """The pipeline's runs, oldest first ([] before the first run)."""
  store = open_store(config)
  if store is None:
    return []
  runs = sorted(store.get_contexts_by_type(PIPELINE_RUN_CONTEXT), key=lambda c: c.id)
  node_ids = _node_ids(store)
  return [_past_run(store, context, node_ids) for context in runs]
