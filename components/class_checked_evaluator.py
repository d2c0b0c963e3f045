"""The Evaluator, refusing a baseline that classifies other classes than the candidate.

TFMA compares a candidate with the last blessed model class by class; a baseline trained for
another task fails deep inside TFMA (`class_id "2" out of range of predictions`), or, when the
class counts happen to match, is compared, and then replaced in serving, as if it did the same
job. This executor checks the class names first and fails with one line that says what to do.

After TFMA, it records on the ModelBlessing the candidate's and the last blessed model's overall
accuracy and, for a span run, its spans: what the Pusher writes into each version's push record
(serving/push_record.py) and the run history reads from ml-metadata.
"""

import os
from typing import Dict, List, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.cleaning.component import SPANS_KEY
from models import features

# ModelBlessing properties: the candidate's and the baseline's (the last blessed model's) overall
# eval accuracy; a span run's SpanPlan (JSON, components.cleaning.component.SPANS_KEY).
ACCURACY_KEY = 'accuracy'
BASELINE_ACCURACY_KEY = 'baseline_accuracy'


class ClassMismatchError(ValueError):
  """The baseline model classifies other classes than the candidate."""


def model_classes(model_uri: str) -> Optional[List[str]]:
  """The class names an exported model's labels vocabulary lists, in class-id order (None for a
  model without one)."""
  path = os.path.join(path_utils.serving_model_path(model_uri), 'assets',
                      features.LABEL_VOCABULARY_NAME)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return [line.rstrip('\n') for line in f]


def check_same_classes(candidate_uri: str, baseline_uri: str) -> None:
  candidate, baseline = model_classes(candidate_uri), model_classes(baseline_uri)
  if candidate is not None and baseline is not None and candidate != baseline:
    raise ClassMismatchError(
        f'The last blessed model classifies {baseline}, this one {candidate}: a model for '
        'another task is neither compared with it nor pushed in its place. Give this dataset '
        f'another name (a new pipeline and served model), or remove the old outputs. Baseline: '
        f'{baseline_uri}')


def overall_accuracies(evaluation_uri: str) -> Dict[str, float]:
  """ACCURACY_KEY (and, with a baseline, BASELINE_ACCURACY_KEY) -> accuracy on the whole eval
  split, from TFMA's metrics: both models are scored on the same examples."""
  keys = {'': ACCURACY_KEY, tfma.CANDIDATE_KEY: ACCURACY_KEY,
          tfma.BASELINE_KEY: BASELINE_ACCURACY_KEY}
  accuracies = {}
  for metrics in tfma.load_metrics(evaluation_uri):
    if metrics.slice_key.single_slice_keys:
      continue
    for entry in metrics.metric_keys_and_values:
      key = entry.key
      if (key.name == features.ACCURACY_METRIC and not key.is_diff
          and not key.HasField('sub_key') and key.model_name in keys):
        accuracies[keys[key.model_name]] = entry.value.double_value.value
  return accuracies


class Executor(evaluator_executor.Executor):

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    baseline = input_dict.get('baseline_model')
    if baseline:
      check_same_classes(artifact_utils.get_single_uri(input_dict['model']),
                         artifact_utils.get_single_uri(baseline))
    super().Do(input_dict, output_dict, exec_properties)
    blessing = artifact_utils.get_single_instance(output_dict['blessing'])
    for name, accuracy in overall_accuracies(
        artifact_utils.get_single_uri(output_dict['evaluation'])).items():
      blessing.set_float_custom_property(name, accuracy)
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    if examples.has_custom_property(SPANS_KEY):
      blessing.set_string_custom_property(SPANS_KEY, examples.get_string_custom_property(SPANS_KEY))
