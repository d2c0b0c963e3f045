"""The TFX Tuner entry point `tuner_fn`: a KerasTuner random search over `TuningSettings`.

Each trial builds and compiles the Trainer's model with the trial's values and trains it for a few
epochs (within the Trainer's step budget) on the training split minus a held-out share, which
scores the trial. The eval split is
left alone: it judges the final model (early stopping, Evaluator), and tuning on it would make that
judgement optimistic. The Trainer reads the best values (`trainer.prepare` → `tuned_settings`).
"""

import dataclasses

import keras_tuner
from tfx import v1 as tfx

from models import trainer
from models.settings import (SearchSpace, TuningSettings, from_custom_config,
                             resolve_search_space, resolve_training, tuned_settings)


def search_space(space: SearchSpace) -> keras_tuner.HyperParameters:
  hyperparameters = keras_tuner.HyperParameters()
  for name, values in space:
    hyperparameters.Choice(name, list(values))
  return hyperparameters


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  setup = trainer.prepare(fn_args)
  tuning = from_custom_config(TuningSettings, (fn_args.custom_config or {}).get('tuning'))
  train_dataset, steps_per_epoch, _ = setup.dataset(
      fn_args.train_files, for_training=True, holdout_percent=tuning.holdout_percent)
  # A trial trains epochs_per_trial epochs within the same step budget as the Trainer.
  train_dataset, steps_per_round, rounds = trainer.in_rounds(
      train_dataset, steps_per_epoch,
      dataclasses.replace(setup.training, epochs=tuning.epochs_per_trial))
  holdout_dataset, _, _ = setup.dataset(
      fn_args.train_files, for_training=False, holdout_percent=tuning.holdout_percent,
      held_out=True)

  def build_trial_model(hyperparameters: keras_tuner.HyperParameters):
    trial_model, trial_training = tuned_settings(hyperparameters.values, setup.model_settings,
                                                 setup.training)
    return setup.compiled_model(trial_model, resolve_training(trial_model, trial_training),
                                steps_per_round * rounds)

  tuner = keras_tuner.RandomSearch(
      hypermodel=build_trial_model,
      hyperparameters=search_space(resolve_search_space(setup.model_settings, tuning)),
      objective=keras_tuner.Objective('val_accuracy', direction='max'),
      max_trials=tuning.max_trials,
      seed=setup.training.seed,
      distribution_strategy=setup.strategy,
      directory=fn_args.working_dir,
      project_name='text_classifier_tuning',
      overwrite=True)
  return tfx.components.TunerFnResult(
      tuner=tuner,
      fit_kwargs={'x': train_dataset, 'validation_data': holdout_dataset, 'epochs': rounds,
                  'steps_per_epoch': steps_per_round, 'verbose': 2})
