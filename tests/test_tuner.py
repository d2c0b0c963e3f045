"""Tuner settings: what the search space may hold, and how the best values reach the Trainer."""

import pytest

from models import tuner
from models.settings import (ARCHITECTURE_SEARCH_SPACES, ModelSettings, TrainingSettings,
                             TuningSettings, resolve_search_space, tuned_settings, with_overrides)
from pipeline.config import PipelineConfig

TRANSFORMER = ModelSettings(architecture='transformer')


def test_best_values_replace_the_settings_they_name():
  best = tuner.search_space(resolve_search_space(TRANSFORMER, TuningSettings())).get_config()
  best['values'] = {'model.num_layers': 3, 'training.learning_rate': 5e-4}
  model_settings, training = tuned_settings(best, TRANSFORMER, TrainingSettings())
  assert model_settings.num_layers == 3 and training.learning_rate == 5e-4
  assert model_settings.embedding_dim == TRANSFORMER.embedding_dim


@pytest.mark.parametrize('architecture', ['pretrained', 'transformer'])
def test_search_space_holds_every_choice_of_the_architecture(architecture):
  model = ModelSettings(architecture=architecture)
  space = tuner.search_space(resolve_search_space(model, TuningSettings()))
  assert {hp.name: list(hp.values) for hp in space.space} == {
      name: list(values) for name, values in ARCHITECTURE_SEARCH_SPACES[architecture]}


def test_a_configured_search_space_replaces_the_architecture_default():
  configured = (('model.dropout', (0.0, 0.5)),)
  tuning = TuningSettings(search_space=configured)
  assert resolve_search_space(ModelSettings(), tuning) == configured


@pytest.mark.parametrize('name', ['training.batch_size', 'model.no_such_field', 'dropout'])
def test_a_setting_trials_cannot_change_is_a_clear_error(name):
  with pytest.raises(ValueError, match='Cannot tune'):
    TuningSettings(search_space=((name, (1,)),))


def test_warm_start_with_a_tuned_architecture_is_a_clear_error():
  reshaping = r"cannot search \['model.num_layers', 'model.embedding_dim'\]"
  with pytest.raises(ValueError, match=reshaping):
    with_overrides(PipelineConfig(), {'model': {'architecture': 'transformer'},
                                      'training': {'warm_start': True},
                                      'tuning': {'enabled': True}})


def test_warm_start_with_the_pretrained_search_space_is_allowed():
  config = with_overrides(PipelineConfig(), {'training': {'warm_start': True},
                                             'tuning': {'enabled': True}})
  assert config.tuning.enabled and config.training.warm_start
