"""Drift between spans: the newest span's training rows against the previous span's, measured by
TFX's DistributionValidator (TFDV's drift comparators), judged here before anything is trained.

Why DistributionValidator rather than ExampleValidator's drift comparators: ExampleValidator in
TFX 1.16 takes no previous statistics, so it cannot compare two spans; DistributionValidator
compares two split of statistics with thresholds from its own config, and records every measured
distance, flagged or not, which the run summary and the history report.

Measured on three features of the cleaned examples: the label (its class shares), the number of
words per text (its histogram) and the words themselves (the shares of the frequent ones), the
last two written by a span run's ingestion (features.WORD_COUNT_KEY, WORDS_KEY).
"""

import json
import os
from typing import List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, path_pb2
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import distribution_validator_pb2
from tfx.types import standard_artifacts

from components.cleaning import spans
from components.cleaning.component import SPANS_KEY
from models import features
from models.settings import DriftSettings

DRIFT_FILE = 'drift.json'
ANOMALIES_FILE = 'SchemaDiff.pb'
# (statistics split, baseline statistics split) that DistributionValidator compares.
SPLIT_PAIR = ('train', spans.OLDER_SPAN_SPLIT.format(1))
# feature -> (DriftSettings field, TFDV comparator, what people read).
MEASURES = {
    features.LABEL_KEY: ('label_linf', 'infinity_norm', 'L-infinity distance of class shares'),
    features.WORD_COUNT_KEY: ('length_jsd', 'jensen_shannon_divergence',
                              'Jensen-Shannon divergence of words per text'),
    features.WORDS_KEY: ('vocabulary_linf', 'infinity_norm',
                         'L-infinity distance of frequent-word shares'),
}


class DriftReport(types.Artifact):
  """JSON: the spans compared, each measured distance with its threshold, and the verdict."""
  TYPE_NAME = 'text_classifier.DriftReport'


class DriftError(RuntimeError):
  """The newest span's data differs from the previous span's beyond a threshold."""


def distribution_validator_config(
    drift: DriftSettings) -> distribution_validator_pb2.DistributionValidatorConfig:
  config = distribution_validator_pb2.DistributionValidatorConfig()
  for feature, (field, comparator, _) in MEASURES.items():
    compared = config.default_slice_config.feature.add(path=path_pb2.Path(step=[feature]))
    getattr(compared.distribution_comparator, comparator).threshold = getattr(drift, field)
  return config


def measured_drift(anomalies_uri: str) -> List[dict]:
  """Each configured measure: feature, measure, value, threshold, flagged."""
  path = os.path.join(anomalies_uri, f'SplitPair-{SPLIT_PAIR[0]}_{SPLIT_PAIR[1]}', ANOMALIES_FILE)
  with tf.io.gfile.GFile(path, 'rb') as f:
    anomalies = anomalies_pb2.Anomalies.FromString(f.read())
  measured = {'.'.join(info.path.step): info.drift_measurements
              for info in anomalies.drift_skew_info}
  results = []
  for feature, (_, _, measure) in MEASURES.items():
    for measurement in measured.get(feature, []):
      results.append({'feature': feature, 'measure': measure, 'value': measurement.value,
                      'threshold': measurement.threshold,
                      'flagged': measurement.value > measurement.threshold})
    if feature not in measured:  # TFDV could not compare it: say so, never pass it silently
      results.append({'feature': feature, 'measure': measure, 'value': None, 'threshold': None,
                      'flagged': True})
  return results


def describe(measurement: dict) -> str:
  if measurement['value'] is None:
    return f"{measurement['feature']}: {measurement['measure']} could not be measured"
  relation = '>' if measurement['flagged'] else '<='
  return (f"{measurement['feature']}: {measurement['measure']} {measurement['value']:.4f} "
          f"{relation} threshold {measurement['threshold']:.4f}")


def read_drift_report(uri: str) -> dict:
  with tf.io.gfile.GFile(os.path.join(uri, DRIFT_FILE)) as f:
    return json.load(f)


@component
def DriftGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],  # pylint: disable=invalid-name
              examples: InputArtifact[standard_artifacts.Examples],
              drift: OutputArtifact[DriftReport],
              on_drift: Parameter[str]) -> None:
  """Stops the run (on_drift 'stop') or marks it (on_drift 'warn') when the newest span drifted
  from the previous one; the first span has nothing to compare with, and says so."""
  span_plan = json.loads(examples.get_string_custom_property(SPANS_KEY))
  newest, baseline = span_plan['newest'], span_plan['baseline']
  report = {'newest_span': newest, 'baseline_span': baseline, 'on_drift': on_drift,
            'measurements': []}
  if baseline is None:
    report['verdict'] = f'span {newest} is the first span: nothing to compare it with'
  else:
    report['measurements'] = measured_drift(anomalies.uri)
    flagged = [describe(m) for m in report['measurements'] if m['flagged']]
    report['drifted'] = bool(flagged)
    against = f'span {newest} against span {baseline}'
    report['verdict'] = (f'{against}: ' + '; '.join(flagged) if flagged
                         else f'{against}: no drift')
  tf.io.gfile.makedirs(drift.uri)
  with tf.io.gfile.GFile(os.path.join(drift.uri, DRIFT_FILE), 'w') as f:
    json.dump(report, f, indent=2)
  drift.set_int_custom_property('drifted', int(report.get('drifted', False)))
  if report.get('drifted') and on_drift == 'stop':
    raise DriftError(f"Drift, {report['verdict']}. Stopping before training; set drift.on_drift: "
                     'warn to train anyway, or raise the threshold in the dataset file.')
