"""DataGate: fails the run, naming each anomaly, when ExampleValidator found any.

ExampleValidator only records anomalies; nothing downstream reads them. Transform runs after this
gate, so a file with a missing column or an unexpected label never reaches training.
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

ANOMALIES_FILE = 'SchemaDiff.pb'


class DataAnomaliesError(RuntimeError):
  """The examples do not match the schema."""


def describe_anomalies(anomalies_artifact: standard_artifacts.ExampleAnomalies) -> list:
  """One line per anomaly: split, feature, short description and description."""
  return describe_anomalies_at(anomalies_artifact.uri,
                               artifact_utils.decode_split_names(anomalies_artifact.split_names))


def describe_anomalies_at(uri: str, splits) -> list:
  """describe_anomalies of the ExampleAnomalies at `uri`, for `splits`."""
  problems = []
  for split in splits:
    path = os.path.join(uri, f'Split-{split}', ANOMALIES_FILE)
    with tf.io.gfile.GFile(path, 'rb') as f:
      anomalies = anomalies_pb2.Anomalies.FromString(f.read())
    for feature, info in sorted(anomalies.anomaly_info.items()):
      problems.append(f'[{split}] {feature}: {info.short_description} ({info.description})')
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      problems.append(f'[{split}] dataset: {info.short_description} ({info.description})')
  return problems


@component
def DataGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:  # pylint: disable=invalid-name
  problems = describe_anomalies(anomalies)
  if problems:
    raise DataAnomaliesError(
        'The data does not match the schema; stopping before Transform and training:\n  '
        + '\n  '.join(problems))
