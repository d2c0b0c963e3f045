"""The Evaluator, refusing a baseline that classifies other classes than the candidate.

TFMA compares a candidate with the last blessed model class by class; a baseline trained for
another task fails deep inside TFMA (`class_id "2" out of range of predictions`), or, when the
class counts happen to match, is compared, and then replaced in serving, as if it did the same
job. This executor checks the class names first and fails with one line that says what to do.
"""

import os
from typing import List, Optional

import tensorflow as tf
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from models import features


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


class Executor(evaluator_executor.Executor):

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    baseline = input_dict.get('baseline_model')
    if baseline:
      check_same_classes(artifact_utils.get_single_uri(input_dict['model']),
                         artifact_utils.get_single_uri(baseline))
    super().Do(input_dict, output_dict, exec_properties)
