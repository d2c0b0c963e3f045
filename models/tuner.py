"""The TFX Tuner entry point `tuner_fn`: a KerasTuner random search over `TuningSettings`.

Each trial builds and compiles the Trainer's model with the trial's values and trains it for a few
epochs on the training split minus a held-out share, which scores the trial. The eval split is
left alone: it judges the final model (early stopping, Evaluator), and tuning on it would make that
judgement optimistic. The Trainer reads the best values (`run_fn` → `tuned_settings`).
"""

import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from models import model as model_lib, strategy as strategy_lib
from pipeline.config import ModelSettings, TrainingSettings, TuningSettings, from_custom_config


def search_space(tuning: TuningSettings) -> keras_tuner.HyperParameters:
  hyperparameters = keras_tuner.HyperParameters()
  for name, values in tuning.search_space:
    hyperparameters.Choice(name, list(values))
  return hyperparameters


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  custom_config = fn_args.custom_config or {}
  model_settings = from_custom_config(ModelSettings, custom_config.get('model'))
  training = from_custom_config(TrainingSettings, custom_config.get('training'))
  tuning = from_custom_config(TuningSettings, custom_config.get('tuning'))
  strategy = strategy_lib.create_strategy(training.distribution_strategy, training.tpu_address)

  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  vocabulary_size = len(model_lib.wordpiece_vocabulary(tf_transform_output))
  num_classes = len(model_lib.label_names(tf_transform_output))
  max_seq_length = model_lib.max_seq_length(tf_transform_output)
  global_batch_size = training.batch_size * strategy.num_replicas_in_sync

  def dataset(held_out: bool):
    return model_lib.with_known_length(model_lib.make_dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, global_batch_size,
        for_training=not held_out, settings=training, holdout_percent=tuning.holdout_percent,
        held_out=held_out))

  train_dataset, steps_per_epoch, _ = dataset(held_out=False)
  holdout_dataset, _, _ = dataset(held_out=True)

  def build_trial_model(hyperparameters: keras_tuner.HyperParameters):
    trial_model, trial_training = model_lib.tuned_settings(hyperparameters.values,
                                                           model_settings, training)
    with model_lib.dtype_policy(trial_training.mixed_precision):
      model = model_lib.build_model(vocabulary_size, max_seq_length, num_classes, trial_model)
      model_lib.compile_model(model, steps_per_epoch * tuning.epochs_per_trial, trial_training,
                              strategy.num_replicas_in_sync)
    return model

  tuner = keras_tuner.RandomSearch(
      hypermodel=build_trial_model,
      hyperparameters=search_space(tuning),
      objective=keras_tuner.Objective('val_accuracy', direction='max'),
      max_trials=tuning.max_trials,
      seed=training.seed,
      distribution_strategy=strategy,
      directory=fn_args.working_dir,
      project_name='text_classifier_tuning',
      overwrite=True)
  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'x': train_dataset, 'validation_data': holdout_dataset,
                  'epochs': tuning.epochs_per_trial, 'verbose': 2})
