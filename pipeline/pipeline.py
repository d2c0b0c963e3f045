"""The TFX pipeline: raw text files -> cleaned examples -> ... -> a pushed SavedModel.

The same `create_pipeline` serves every runner (local, Kubeflow / Vertex AI); runners only choose
the metadata store, the Beam arguments and where things live.
"""

import dataclasses
import json
from typing import List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components import DistributionValidator
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.base.base_node import BaseNode

from components import atomic_pusher, class_checked_evaluator, drift_gate
from components.cleaning import spans
from components.cleaning.rules import GOLDEN_SPLIT
from components.cleaning.component import TextCleaningExampleGen
from components.described_schema import DescribedSchemaGen
from components.data_gate import DataGate
from models import features
from models.settings import CLASS_DISPLAY_NAMES_KEY, as_custom_config, student_custom_config
from pipeline.config import PipelineConfig

PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'models.trainer.run_fn'
TUNER_FN = 'models.tuner.tuner_fn'
DISTILLATION_RUN_FN = 'models.distillation.run_fn'
# Node ids: the teacher's keep TFX's defaults, so existing runs' caches and baselines carry over.
TRAINER_ID, EVALUATOR_ID, PUSHER_ID = 'Trainer', 'Evaluator', 'Pusher'
STUDENT_TRAINER_ID = 'StudentTrainer'
STUDENT_EVALUATOR_ID = 'StudentEvaluator'
STUDENT_PUSHER_ID = 'StudentPusher'
# Scores the model, and the last blessed one, on the fixed golden file (no gate).
GOLDEN_EVALUATOR_ID = 'GoldenEvaluator'
RESOLVER_IDS = {TRAINER_ID: 'latest_blessed_model_resolver',
                STUDENT_TRAINER_ID: 'latest_blessed_student_resolver'}


def create_eval_config(config: PipelineConfig) -> tfma.EvalConfig:
  """TFMA: accuracy with an absolute floor and a no-regression check against the last blessed
  model, the confusion matrix, per-class (or binary) AUC and calibration, sliced by text
  length."""
  # The thresholds judge the whole eval split: a small length slice is reported, not gated on.
  accuracy = tfma.MetricConfig(
      class_name='SparseCategoricalAccuracy',
      per_slice_thresholds=[tfma.PerSliceMetricThreshold(
          slicing_specs=[tfma.SlicingSpec()],
          threshold=tfma.MetricThreshold(
              value_threshold=tfma.GenericValueThreshold(
                  lower_bound={'value': config.evaluation.accuracy_lower_bound}),
              change_threshold=tfma.GenericChangeThreshold(
                  direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                  absolute={'value': -config.evaluation.accuracy_regression_tolerance})))])
  metrics_specs = [tfma.MetricsSpec(metrics=[
      tfma.MetricConfig(class_name='ExampleCount'),
      accuracy,
      tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
  ])]
  num_classes = len(config.ingestion.label_names)
  if num_classes:
    # Binary: the positive class (id 1). More classes: each class one-vs-rest. Per-class
    # precision and recall come from the confusion matrix (the predicted class is the most
    # probable one); binarized at TFMA's 0.5 threshold they would be wrong for 3+ classes.
    class_ids = [1] if num_classes == 2 else list(range(num_classes))
    metrics_specs.append(tfma.MetricsSpec(
        binarize=tfma.BinarizationOptions(class_ids={'values': class_ids}),
        metrics=[tfma.MetricConfig(class_name='AUC'),
                 tfma.MetricConfig(class_name='CalibrationPlot')]))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name=features.TF_EXAMPLE_SIGNATURE,
          model_type='tf_generic',
          label_key=features.LABEL_ID_KEY,
          prediction_key=features.PROBABILITIES_KEY,
          preprocessing_function_names=[features.TRANSFORM_SIGNATURE])],
      slicing_specs=[tfma.SlicingSpec(),
                     tfma.SlicingSpec(feature_keys=[features.LENGTH_BUCKET_KEY])],
      metrics_specs=metrics_specs)


def push_destinations(config: PipelineConfig) -> Tuple[Optional[str], Optional[str]]:
  """(where the Trainer's model is pushed, where the distilled student is), None for a model the
  pipeline does not push: `distillation.push` says which; the student alone takes the model
  name, both give the student <model_name>_student."""
  if not config.distillation.enabled:
    return config.push_destination, None
  return {'teacher': (config.push_destination, None),
          'student': (None, config.push_destination),
          'both': (config.push_destination, config.student_push_destination),
          }[config.distillation.push]


def latest_blessed_model(trainer_id: str, evaluator_id: str) -> tfx.dsl.Resolver:
  """The newest model of `trainer_id` that `evaluator_id` blessed: a teacher's baseline is never
  a student, nor the other way round."""
  return tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=trainer_id),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                     producer_component_id=evaluator_id),
  ).with_id(RESOLVER_IDS[trainer_id])


def evaluator_node(examples, model, baseline_model, config: PipelineConfig,
                   split: str = 'eval') -> tfx.components.Evaluator:
  """TFMA's Evaluator on the examples' `split`, refusing a baseline for other classes
  (class_checked_evaluator)."""
  evaluator = tfx.components.Evaluator(examples=examples, model=model,
                                       baseline_model=baseline_model,
                                       eval_config=create_eval_config(config),
                                       **({'example_splits': [split]} if split != 'eval' else {}))
  # Our executors are set on the node: TFX's custom_executor_spec argument is deprecated (and
  # warns on every build), and the Evaluator has none.
  evaluator.executor_spec = executor_spec.BeamExecutorSpec(class_checked_evaluator.Executor)
  return evaluator


def pusher(trainer, evaluator, destination: str, pusher_id: str) -> tfx.components.Pusher:
  """Versions appear whole or not at all, and an unchanged model is not pushed again."""
  node = tfx.components.Pusher(
      model=trainer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=destination)),
  ).with_id(pusher_id)
  node.executor_spec = executor_spec.ExecutorClassSpec(atomic_pusher.Executor)
  return node


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config=None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    trainer_custom_config: Optional[dict] = None) -> tfx.dsl.Pipeline:
  """All components, wired. `trainer_custom_config` adds runner-specific Trainer settings."""
  # Display names are for people: renaming one must not re-run the ingestion and all after it.
  example_gen = TextCleaningExampleGen(
      dataclasses.replace(config.ingestion, label_display_names=()))
  # A span run also writes its older spans' rows (spans.older_span_splits): validated when they
  # were the newest, so only the previous one, the drift baseline, needs statistics again.
  # Without spans, every node is built as before (so earlier runs' caches still hold).
  has_spans, window = config.ingestion.has_spans, config.ingestion.window
  older_splits = spans.older_span_splits(window) if has_spans else []
  training_splits = spans.training_splits(window) if has_spans else ['train']
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs['examples'],
      **({'exclude_splits': older_splits[1:]} if has_spans else {}))
  if config.schema_file:
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
  else:
    schema_gen = DescribedSchemaGen(
        label_names_json=json.dumps(list(config.ingestion.label_names)),
        **({'with_profile': 1} if has_spans else {}))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'],
      **({'exclude_splits': older_splits} if has_spans else {}))
  data_gate = DataGate(anomalies=example_validator.outputs['anomalies'])
  validation: List[BaseNode] = [example_validator, data_gate]
  gates: List[BaseNode] = [data_gate]  # what must pass before Transform
  if has_spans:
    distribution_validator = DistributionValidator(
        statistics=statistics_gen.outputs['statistics'],
        baseline_statistics=statistics_gen.outputs['statistics'],
        config=drift_gate.distribution_validator_config(config.drift),
        include_split_pairs=[drift_gate.SPLIT_PAIR])
    span_drift_gate = drift_gate.DriftGate(
        anomalies=distribution_validator.outputs['anomalies'],
        examples=example_gen.outputs['examples'], on_drift=config.drift.on_drift)
    validation += [distribution_validator, span_drift_gate]
    gates.append(span_drift_gate)

  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      preprocessing_fn=PREPROCESSING_FN,
      # Only what is trained and evaluated on: not the older spans read for drift, nor the
      # golden file, which the Evaluator reads raw.
      **({'splits_config': tfx.proto.SplitsConfig(analyze=training_splits,
                                                  transform=[*training_splits, 'eval'])}
         if has_spans or config.ingestion.golden_pattern else {}),
      custom_config={'preprocessing': as_custom_config(config.preprocessing),
                     # Only what decides the tokenization, so other model changes reuse the cache.
                     'model': {'architecture': config.model.architecture,
                               'backbone': config.model.backbone},
                     'label_names': list(config.ingestion.label_names)})
  for gate in gates:  # no training on data that failed validation or drifted
    transform.add_upstream_node(gate)

  # The last blessed model: the Evaluator's baseline, and the Trainer's starting point when
  # warm-starting.
  model_resolver = latest_blessed_model(TRAINER_ID, EVALUATOR_ID)

  model_config = {'model': as_custom_config(config.model),
                  'training': as_custom_config(
                      dataclasses.replace(config.training, warm_start=config.warm_start)),
                  CLASS_DISPLAY_NAMES_KEY: list(config.ingestion.display_names)}
  # What the Tuner's trials and the Trainer both train on.
  train_args = tfx.proto.TrainArgs(splits=training_splits) if has_spans else tfx.proto.TrainArgs()
  training_inputs = dict(examples=transform.outputs['transformed_examples'],
                         transform_graph=transform.outputs['transform_graph'],
                         schema=schema_gen.outputs['schema'],
                         train_args=train_args, eval_args=tfx.proto.EvalArgs())
  tuner = None
  if config.tuning.enabled:
    tuner = tfx.components.Tuner(
        tuner_fn=TUNER_FN, **training_inputs,
        custom_config={**model_config, 'tuning': as_custom_config(config.tuning)})

  trainer = tfx.components.Trainer(
      run_fn=RUN_FN, **training_inputs,
      base_model=model_resolver.outputs['model'] if config.warm_start else None,
      hyperparameters=tuner.outputs['best_hyperparameters'] if tuner else None,
      custom_config={**model_config, **(trainer_custom_config or {})}).with_id(TRAINER_ID)

  evaluator = evaluator_node(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      baseline_model=model_resolver.outputs['model'],
      config=config).with_id(EVALUATOR_ID)

  nodes: List[BaseNode] = [model_resolver, trainer, evaluator]
  if config.ingestion.golden_pattern:
    nodes.append(evaluator_node(
        examples=example_gen.outputs['examples'], model=trainer.outputs['model'],
        baseline_model=model_resolver.outputs['model'], config=config,
        split=GOLDEN_SPLIT).with_id(GOLDEN_EVALUATOR_ID))
  teacher_destination, student_destination = push_destinations(config)
  if teacher_destination:
    nodes.append(pusher(trainer, evaluator, teacher_destination, PUSHER_ID))
  if config.distillation.enabled:
    # The student: trained on the teacher's probabilities over the raw examples, which the
    # teacher's exported model tokenizes and scores itself.
    student_resolver = latest_blessed_model(STUDENT_TRAINER_ID, STUDENT_EVALUATOR_ID)
    student_trainer = tfx.components.Trainer(
        run_fn=DISTILLATION_RUN_FN,
        examples=example_gen.outputs['examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        base_model=trainer.outputs['model'],
        train_args=train_args, eval_args=tfx.proto.EvalArgs(),
        custom_config={**student_custom_config(config.model, config.distillation),
                       CLASS_DISPLAY_NAMES_KEY: list(config.ingestion.display_names),
                       **(trainer_custom_config or {})}).with_id(STUDENT_TRAINER_ID)
    student_evaluator = evaluator_node(
        examples=example_gen.outputs['examples'],
        model=student_trainer.outputs['model'],
        baseline_model=student_resolver.outputs['model'],
        config=config).with_id(STUDENT_EVALUATOR_ID)
    nodes += [student_resolver, student_trainer, student_evaluator,
              *([pusher(student_trainer, student_evaluator, student_destination,
                        STUDENT_PUSHER_ID)] if student_destination else [])]

  components: List[BaseNode] = [
      example_gen, statistics_gen, schema_gen, *validation, transform,
      *([tuner] if tuner else []), *nodes]
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args or config.beam_pipeline_args))
