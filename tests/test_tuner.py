"""Tuner settings: what the search space may hold, and how the best values reach the Trainer."""

import pytest

from models import model as model_lib, tuner
from pipeline.config import (ModelSettings, PipelineConfig, TrainingSettings, TuningSettings,
                             with_overrides)


def test_best_values_replace_the_settings_they_name():
  best = tuner.search_space(TuningSettings()).get_config()
  best['values'] = {'model.num_layers': 3, 'training.learning_rate': 5e-4}
  model_settings, training = model_lib.tuned_settings(best, ModelSettings(), TrainingSettings())
  assert model_settings.num_layers == 3 and training.learning_rate == 5e-4
  assert model_settings.embedding_dim == ModelSettings().embedding_dim


def test_search_space_holds_every_configured_choice():
  space = tuner.search_space(TuningSettings())
  assert {hp.name: list(hp.values) for hp in space.space} == {
      name: list(values) for name, values in TuningSettings().search_space}


@pytest.mark.parametrize('name', ['training.batch_size', 'model.no_such_field', 'dropout'])
def test_a_setting_trials_cannot_change_is_a_clear_error(name):
  with pytest.raises(ValueError, match='Cannot tune'):
    TuningSettings(search_space=((name, (1,)),))


def test_warm_start_with_a_tuned_architecture_is_a_clear_error():
  with pytest.raises(ValueError, match=r"cannot search \['model.num_layers', 'model.embedding_dim'\]"):
    with_overrides(PipelineConfig(), {'training': {'warm_start': True},
                                      'tuning': {'enabled': True}})
