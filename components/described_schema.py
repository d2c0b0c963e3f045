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


def described_schema(label_names, with_profile: bool = False) -> schema_pb2.Schema:
  """`with_profile`: a span run's examples also carry the drift profile (features.WORDS_KEY and
  WORD_COUNT_KEY), present on every example but, having no fixed shape, optional to parse, so a
  caller of the model's tf.Example signature need not send them."""
  schema = schema_pb2.Schema()
  for name in (features.TEXT_KEY, features.LABEL_KEY):
    feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add(size=1)
  if label_names:
    schema.feature[1].domain = LABEL_DOMAIN
    schema.string_domain.add(name=LABEL_DOMAIN, value=list(label_names))
  if with_profile:
    for name, feature_type in ((features.WORD_COUNT_KEY, schema_pb2.INT),
                               (features.WORDS_KEY, schema_pb2.BYTES)):
      feature = schema.feature.add(name=name, type=feature_type)
      feature.presence.min_fraction = 1.0
    schema.feature[-2].value_count.min = schema.feature[-2].value_count.max = 1
  return schema


@component
def DescribedSchemaGen(schema: OutputArtifact[standard_artifacts.Schema],  # pylint: disable=invalid-name
                       label_names_json: Parameter[str], with_profile: Parameter[int] = 0) -> None:
  """`label_names_json`: the class names, as a JSON list (empty: any label); `with_profile`: 1 for
  a span run's examples."""
  tf.io.gfile.makedirs(schema.uri)
  with tf.io.gfile.GFile(os.path.join(schema.uri, SCHEMA_FILE), 'w') as f:
    f.write(text_format.MessageToString(
        described_schema(json.loads(label_names_json), bool(with_profile))))
