"""Configuration from the environment: overrides, and clear errors for bad ones."""

import pytest

from pipeline.config import PipelineConfig


def test_overrides_set_nested_fields(monkeypatch):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES',
                     '{"model": {"architecture": "transformer"}, "training": {"max_steps": 7}}')
  config = PipelineConfig.from_env()
  assert config.model.architecture == 'transformer' and config.training.max_steps == 7


@pytest.mark.parametrize('value, message', [
    ('{"training": {"epochs": 2}', 'TEXT_CLASSIFIER_OVERRIDES is not valid JSON'),
    ('[1, 2]', 'TEXT_CLASSIFIER_OVERRIDES must be a JSON object'),
    ('{"trainng": {}}', r"Unknown PipelineConfig field\(s\) \['trainng'\]"),
    ('{"model": {"architecture": "cnn"}}', "Unknown model architecture 'cnn'"),
])
def test_bad_overrides_are_clear_errors(monkeypatch, value, message):
  monkeypatch.setenv('TEXT_CLASSIFIER_OVERRIDES', value)
  with pytest.raises(ValueError, match=message):
    PipelineConfig.from_env()
