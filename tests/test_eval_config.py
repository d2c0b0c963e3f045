"""The Evaluator's blessing rules: thresholds on the whole eval split, slices only reported."""

import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_eval_config


def test_accuracy_thresholds_gate_on_the_overall_slice_only():
  config = PipelineConfig()
  eval_config = create_eval_config(config)
  accuracy = [m for spec in eval_config.metrics_specs for m in spec.metrics
              if m.class_name == 'SparseCategoricalAccuracy']
  assert len(accuracy) == 1
  assert not accuracy[0].HasField('threshold')  # would apply to every length slice too
  [per_slice] = accuracy[0].per_slice_thresholds
  assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
  threshold = per_slice.threshold
  assert threshold.value_threshold.lower_bound.value == config.evaluation.accuracy_lower_bound
  assert (threshold.change_threshold.absolute.value
          == -config.evaluation.accuracy_regression_tolerance)
  assert [s.feature_keys for s in eval_config.slicing_specs] == [[], ['length_bucket']]
