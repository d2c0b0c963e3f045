"""Trains model/training variants on the last local run's Transform output and measures each one's
accuracy on validation.tsv through the exported raw-text signature.

    python -m benchmarks.tune_model [--variants NAME ...] [--seeds 42 1 2]

Each variant runs the Trainer's own `run_fn` (same input pipeline, strategy and export), so the
figures are what the pipeline would get. Prints: variant, accuracy for each seed, their mean, and
the mean training+export seconds. With 872 validation sentences one run's standard error is about
1.3 points, and seeds alone move accuracy by about as much: compare means over several seeds.
Preprocessing settings (vocabulary size, sequence length) change the Transform output, so they
are compared by whole pipeline runs instead (TEXT_CLASSIFIER_OVERRIDES, TEXT_CLASSIFIER_OUTPUT_DIR).
"""

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np
import tensorflow_text  # noqa: F401  (registers the TF Text ops the exported model uses)
from tfx import v1 as tfx

from benchmarks.common import eval_accuracy, latest_artifact_dir, read_labelled_tsv
from models import trainer
from models.latency import serving_signature
from models.settings import ModelSettings, TrainingSettings, as_custom_config
from pipeline.config import PipelineConfig

# name -> (model overrides, training overrides), relative to the run's configuration
# (pipeline/config.py and TEXT_CLASSIFIER_OVERRIDES). Variants of the other architecture's fields
# need a Transform output made for that architecture (a `make run` with it).
VARIANTS = {
    'default': ({}, {}),
    # architecture 'pretrained'
    'cls_pooling': ({'pooling': 'cls'}, {}),
    'freeze_embeddings': ({'freeze_embeddings': True}, {}),
    'steps_1000': ({}, {'max_steps': 1000}),
    'steps_3000': ({}, {'max_steps': 3000, 'steps_per_evaluation': 1000}),
    'lr_5e-5': ({}, {'learning_rate': 5e-5}),
    'lr_2e-4': ({}, {'learning_rate': 2e-4}),
    'mixed_bfloat16': ({}, {'mixed_precision': 'mixed_bfloat16'}),
    # architecture 'transformer'
    'no_length_buckets': ({}, {'length_buckets': ()}),
    'dropout_0.2': ({'dropout': 0.2}, {}),
    'dropout_0.3': ({'dropout': 0.3}, {}),
    'narrow_64d': ({'embedding_dim': 64, 'intermediate_dim': 128}, {}),
    'wide_256d': ({'embedding_dim': 256, 'intermediate_dim': 512, 'dropout': 0.2}, {}),
    '1_layer': ({'num_layers': 1}, {}),
    '4_layers': ({'num_layers': 4}, {}),
    'max_pooling': ({'pooling': 'max'}, {}),
    'mean_max_pooling': ({'pooling': 'mean_max'}, {}),
    'lr_5e-4': ({}, {'learning_rate': 5e-4}),
    'lr_2e-3': ({}, {'learning_rate': 2e-3}),
    'batch_64': ({}, {'batch_size': 64}),
    'batch_256': ({}, {'batch_size': 256}),
    'epochs_2': ({}, {'epochs': 2}),
    'epochs_5': ({}, {'epochs': 5, 'early_stopping_patience': 2}),
    'weight_decay_0.1': ({}, {'weight_decay': 0.1}),
    'label_smoothing_0.1': ({}, {'label_smoothing': 0.1}),
    'balance_classes': ({}, {'balance_classes': True}),
    'jit_compile': ({}, {'jit_compile': True}),
}


def fn_args_for(config: PipelineConfig, model: ModelSettings, training: TrainingSettings,
                work_dir: str) -> tfx.components.FnArgs:
  """The Trainer's FnArgs for the last local run's Transform output."""
  return trainer.local_fn_args(
      latest_artifact_dir(config, 'Transform', 'transform_graph'),
      latest_artifact_dir(config, 'Transform', 'transformed_examples'), work_dir,
      {'model': as_custom_config(model), 'training': as_custom_config(training)})


def validation_accuracy(model_dir: str, config: PipelineConfig) -> float:
  ingestion = config.ingestion
  texts, labels = read_labelled_tsv(os.path.join(ingestion.data_root, ingestion.eval_pattern),
                                    ingestion.text_columns[0], ingestion.label_column)
  return eval_accuracy(serving_signature(model_dir), texts, labels, ingestion.label_names)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument('--seeds', nargs='+', type=int, default=[TrainingSettings().seed],
                      help='train each variant once per seed (initialisation and data order)')
  args = parser.parse_args()
  config = PipelineConfig.from_env()
  print(f"{'variant':<24} {'accuracy per seed':<{8 * len(args.seeds)}} {'mean':>6} "
        f"{'seconds':>8}")
  for name in args.variants:
    model_overrides, training_overrides = VARIANTS[name]
    model = dataclasses.replace(config.model, **model_overrides)
    accuracies, seconds = [], []
    for seed in args.seeds:
      training = dataclasses.replace(config.training, seed=seed, **training_overrides)
      with tempfile.TemporaryDirectory() as work_dir:
        started = time.monotonic()
        trainer.run_fn(fn_args_for(config, model, training, work_dir))
        seconds.append(time.monotonic() - started)
        accuracies.append(validation_accuracy(os.path.join(work_dir, 'serving'), config))
    print(f"{name:<24} {' '.join(f'{a:.4f} ' for a in accuracies):<{8 * len(args.seeds)}} "
          f"{np.mean(accuracies):>6.4f} {np.mean(seconds):>8.0f}", flush=True)


if __name__ == '__main__':
  main()
