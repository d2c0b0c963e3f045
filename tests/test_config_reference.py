"""docs/configuration.md is generated from the settings classes: it says what the code does."""

from pipeline import config_reference
from pipeline.config import CloudSettings, PipelineConfig


def test_the_committed_reference_is_what_the_code_says():
  with open(config_reference.PAGE, encoding='utf-8') as f:
    committed = f.read()
  assert committed == config_reference.render(), (
      'docs/configuration.md is out of date: run python -m pipeline.config_reference')


def test_every_setting_is_documented_with_its_allowed_values():
  page = config_reference.render()
  for settings_class in (PipelineConfig, CloudSettings, *config_reference.SECTIONS_OF):
    for name, info in settings_class.__pydantic_fields__.items():
      assert info.description or name in config_reference.SECTIONS, (settings_class, name)
      assert f'| `{name}` |' in page or name in config_reference.SECTIONS, name
  for line in ("| `distribution_strategy` | str | `'auto'` | one of `'auto'`, `'default'`, "
               "`'mirrored'`, `'multi_worker'`, `'tpu'` |",
               '| `batch_size` | int or null | `None`: `128` transformer, `32` pretrained | > 0 |',
               '| `eval_percent` | `eval_percent` | int | `10` | ≥ 1, ≤ 99 |',
               "| `student` | ModelSettings ([model](#model)) | `{'backbone_layers': 2}` |"):
    assert line in page, line


def test_the_reference_does_not_depend_on_where_the_repository_is():
  page = config_reference.render()
  data_root = PipelineConfig().ingestion.data_root
  assert data_root not in page and "`'<repository>/../shared/data/sst2'`" in page
