"""Dataset files: one small YAML (or JSON) file that describes a user's data, so that bringing
one's own data means writing that file, not code. pipeline/datasets/sst2.yaml is the example.

    name: reviews                # names the run's outputs: pipeline root, metadata, served model
    data_root: ../data/reviews   # relative to this file (absolute and gs:// paths too)
    train: train-*.csv           # glob under data_root
    eval: dev.csv                # or `eval_percent: 10`: carved out of the training files
    # Data that arrives over time: TFX's {SPAN} in the patterns (train: 'span-{SPAN}/*.csv',
    # eval: 'span-{SPAN}/dev.csv', or a fixed eval file); each run reads the newest span.
    window: 3                    # train on the newest 3 spans (default 1)
    golden: golden.tsv           # optional: a fixed file every run is also scored on
    drift: {label_linf: 0.1, on_drift: warn}  # thresholds between spans (models/settings.py)
    format: csv                  # csv | tsv | jsonl; default: each file's extension
    columns: [label, title, body]  # only for CSV/TSV files without a header row
    text_columns: [title, body]  # joined with a space
    label_column: label
    labels: {'1': negative, '2': positive}  # class names in the files -> display names, in
                                 # class-id order; or a list of names; absent: learned from data
    schema: my_schema.pbtxt      # optional curated schema; default: generated from the above
    settings: {training: {epochs: 3}}  # any other setting of pipeline/config.py

`load` turns it into overrides of `PipelineConfig` (the same form as TEXT_CLASSIFIER_OVERRIDES).
A leaf module (it imports only models/settings.py), so that the preview command reads the same
file.
"""

import os
import re
from typing import Any, Dict, List

import yaml

from models.settings import merge

# Dataset-file key -> IngestionSettings field.
INGESTION_KEYS = {'data_root': 'data_root', 'train': 'train_pattern', 'eval': 'eval_pattern',
                  'eval_percent': 'eval_percent', 'format': 'input_format',
                  'columns': 'column_names', 'text_columns': 'text_columns',
                  'label_column': 'label_column', 'window': 'window', 'golden': 'golden_pattern'}
KEYS = ('name', *INGESTION_KEYS, 'labels', 'schema', 'drift', 'settings')
# A TF Serving model name and a folder name; Vertex AI's pipeline names take the '-' form.
NAME_PATTERN = re.compile(r'[a-z0-9][a-z0-9_-]{0,62}')


class DatasetFileError(ValueError):
  """The dataset file cannot be read or describes no usable dataset."""


def _relative_to(path: str, folder: str) -> str:
  if '://' in path or os.path.isabs(path):
    return path
  return os.path.normpath(os.path.join(folder, path))


def _names(path: str, key: str, values: Any) -> List[str]:
  """Names as written: strings, or integers (YAML reads 0 and '0' differently; both mean '0').
  YAML 1.1 reads yes/no/on/off as booleans and 1.0 as a float: those, and empty values, are
  refused rather than silently renamed."""
  if not isinstance(values, list) or not values:
    raise DatasetFileError(f'{path}: {key} must be a non-empty list, not {values!r}.')
  for value in values:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
      raise DatasetFileError(f"{path}: {key} has {value!r}; write names as strings (quote "
                             "them: 'yes', '1.0').")
  names = [str(value) for value in values]
  if len(set(names)) != len(names):
    raise DatasetFileError(f'{path}: {key} names something twice: {names}.')
  return names


def _labels(path: str, labels: Any) -> Dict[str, list]:
  if labels is None:
    return {'label_names': [], 'label_display_names': []}
  if isinstance(labels, dict):
    return {'label_names': _names(path, 'labels', list(labels)),
            'label_display_names': _names(path, 'labels (display names)',
                                          list(labels.values()))}
  if isinstance(labels, list):
    return {'label_names': _names(path, 'labels', labels), 'label_display_names': []}
  raise DatasetFileError(f'{path}: labels must map class names to display names '
                         f"({{'0': negative, '1': positive}}) or list them, not {labels!r}.")


def load(path: str) -> dict:
  """The PipelineConfig overrides the dataset file at `path` describes; a DatasetFileError names
  the file and what is wrong."""
  try:
    with open(path, encoding='utf-8') as f:
      description = yaml.safe_load(f)  # JSON is YAML too
  except OSError as error:
    raise DatasetFileError(f'Cannot read the dataset file {path}: {error.strerror}.') from None
  except yaml.YAMLError as error:
    raise DatasetFileError(f'{path} is not valid YAML or JSON: {error}') from None
  if not isinstance(description, dict):
    raise DatasetFileError(f'{path} must hold a mapping of {", ".join(KEYS)}.')
  unknown = sorted(set(description) - set(KEYS))
  if unknown:
    raise DatasetFileError(f'{path}: unknown key(s) {unknown}; expected some of {list(KEYS)}.')
  name = str(description.get('name', ''))
  if not NAME_PATTERN.fullmatch(name):
    raise DatasetFileError(f'{path}: name {name!r} must be 1-63 lowercase letters, digits, _ or -'
                           ' (it names the pipeline and the served model).')
  folder = os.path.dirname(os.path.abspath(path))
  ingestion = {field: description[key] for key, field in INGESTION_KEYS.items()
               if key in description}
  if 'data_root' in ingestion:
    ingestion['data_root'] = _relative_to(str(ingestion['data_root']), folder)
  if 'eval' not in description:
    ingestion['eval_pattern'] = ''  # the eval split is carved out of the training files
  for key, field in (('text_columns', 'text_columns'), ('columns', 'column_names')):
    if key in description:
      value = description[key]
      ingestion[field] = _names(path, key, [value] if isinstance(value, str) else value)
  for key in ('data_root', 'train', 'eval', 'golden', 'format', 'label_column'):
    if key in description and not isinstance(description[key], str):
      raise DatasetFileError(f'{path}: {key} must be a string, not {description[key]!r}.')
  ingestion.update(_labels(path, description.get('labels')))
  if 'window' in description and (isinstance(description['window'], bool)
                                  or not isinstance(description['window'], int)):
    raise DatasetFileError(f"{path}: window must be a whole number of spans, not "
                           f"{description['window']!r}.")
  settings = description.get('settings') or {}
  if not isinstance(settings, dict):
    raise DatasetFileError(f'{path}: settings must be a mapping like {{training: {{epochs: 3}}}}.')
  if 'drift' in description:
    if not isinstance(description['drift'], dict):
      raise DatasetFileError(f'{path}: drift must be a mapping like {{label_linf: 0.1}}.')
    settings = merge({'drift': description['drift']}, settings)
  return merge({'pipeline_name': name, 'model_name': name,
                'schema_file': _relative_to(str(description['schema']), folder)
                               if description.get('schema') else '',
                'ingestion': ingestion}, settings)
