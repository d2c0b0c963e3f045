"""DescribedSchemaGen: the schema of the cleaned examples, generated from the dataset's
description rather than hand-copied: a text and a label feature on every example, and the
configured class names as the label's domain (any label when the classes are learned from data).

ExampleValidator checks every split against it; TFX's SchemaGen would instead infer the label
domain from whatever labels the data happens to hold, so a stray label would pass.
"""

import json
import os

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from models import features

SCHEMA_FILE = 'schema.pbtxt'  # where ImportSchemaGen puts it too
LABEL_DOMAIN = 'label'


def described_schema(label_names) -> schema_pb2.Schema:
  schema = schema_pb2.Schema()
  for name in (features.TEXT_KEY, features.LABEL_KEY):
    feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add(size=1)
  if label_names:
    schema.feature[1].domain = LABEL_DOMAIN
    schema.string_domain.add(name=LABEL_DOMAIN, value=list(label_names))
  return schema


@component
def DescribedSchemaGen(schema: OutputArtifact[standard_artifacts.Schema],  # pylint: disable=invalid-name
                       label_names_json: Parameter[str]) -> None:
  """`label_names_json`: the class names, as a JSON list (empty: any label)."""
  tf.io.gfile.makedirs(schema.uri)
  with tf.io.gfile.GFile(os.path.join(schema.uri, SCHEMA_FILE), 'w') as f:
    f.write(text_format.MessageToString(described_schema(json.loads(label_names_json))))
