"""Every tunable of the pipeline, in one place.

`PipelineConfig` is what runners build the pipeline from. Its nested settings objects are handed to
module code as plain dicts (`custom_config`), so Transform and Trainer see exactly these values.
Paths default to this checkout and the bundled SST-2 data; environment variables override them
(see `from_env`).
"""

import dataclasses
import json
import os
from typing import Optional, Tuple, Union

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class IngestionSettings:
  """Where the raw data is, how to read it, and how to clean it (components/cleaning)."""
  # Directory holding the input files; the patterns below are globs relative to it.
  data_root: str = os.path.join(REPO_ROOT, '..', 'shared', 'data', 'sst2')
  train_pattern: str = 'train.tsv'
  # Files used as the eval split (early stopping, TFMA): SST-2's official dev set by default.
  # Empty: the eval split is carved out of the training files by a hash of the cleaned text.
  eval_pattern: str = 'validation.tsv'
  eval_percent: int = 10  # only used when eval_pattern is empty
  # csv | tsv | jsonl; empty: from each file's extension (.gz allowed).
  input_format: str = ''
  # Several text columns are joined with a space (e.g. title + body).
  text_columns: Tuple[str, ...] = ('sentence',)
  label_column: str = 'label'
  # Class names in class-id order; rows with another label are rejected. Empty: learned from data.
  label_names: Tuple[str, ...] = ('0', '1')
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


@dataclasses.dataclass(frozen=True)
class PreprocessingSettings:
  """Transform: tokenization and label encoding."""
  # An upper bound: on SST-2 the learner stops at ~13,900 tokens, one for every word seen at least
  # min_word_count times. Smaller vocabularies split more words into pieces and measured lower
  # accuracy (README, Training).
  vocab_size: int = 16000
  # Words seen fewer times than this do not get a WordPiece token of their own.
  min_word_count: int = 2
  # Tokens kept per text. SST-2 sentences to classify: median 24, 99th percentile 54 tokens.
  max_seq_length: int = 64


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """The KerasNLP Transformer encoder classifier."""
  embedding_dim: int = 128
  num_layers: int = 2
  num_heads: int = 4
  intermediate_dim: int = 256
  dropout: float = 0.1
  # How token vectors become one text vector: mean | max | mean_max (both, concatenated).
  pooling: str = 'mean'


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
  """Trainer: optimisation and distribution."""
  batch_size: int = 128  # per replica: the global batch is batch_size × replicas
  epochs: int = 3
  learning_rate: float = 1e-3  # peak, for one replica's batch; see learning_rate_scaling
  # How the peak learning rate grows with the replicas: linear | sqrt | none.
  learning_rate_scaling: str = 'linear'
  warmup_fraction: float = 0.1
  weight_decay: float = 0.01
  # Weight each class's examples by examples / (classes × class examples), so a rare class counts
  # as much as a common one (for imbalanced labels; SST-2 is 56% positive).
  balance_classes: bool = False
  # Targets move this far from one-hot towards uniform (0: plain cross-entropy).
  label_smoothing: float = 0.0
  early_stopping_patience: int = 1
  shuffle_buffer_size: int = 10000
  # Batches hold examples of similar token length, padded only to their longest member; these
  # are the bucket edges. Empty: every batch is padded to max_seq_length.
  length_buckets: Tuple[int, ...] = (8, 16, 32)
  jit_compile: bool = False  # XLA
  # Training steps per call into the TensorFlow runtime: fewer Python round trips (+7%
  # examples/s on 2 CPU cores, benchmarks/train_throughput.py). MirroredStrategy runs 1: Keras
  # 3.15 fails there with more.
  steps_per_execution: int = 8
  # Empty: float32. 'mixed_float16' (GPU) or 'mixed_bfloat16' (TPU, CPUs with bf16 units):
  # computation in 16 bits, variables and the output layer in float32.
  mixed_precision: str = ''
  # auto | default | mirrored | multi_worker | tpu
  distribution_strategy: str = 'auto'
  # TPU name or grpc:// address; only read by the `tpu` (and `auto`) strategy.
  tpu_address: str = ''
  seed: int = 42
  # Start from the weights of the last blessed model (same ModelSettings) instead of from scratch;
  # the first run, with no blessed model yet, starts from scratch.
  warm_start: bool = False


# Training fields that only act on the optimiser, so a Tuner trial can set them on the same data.
TUNABLE_TRAINING_FIELDS = ('learning_rate', 'warmup_fraction', 'weight_decay', 'label_smoothing')
# Model fields that change the shapes of the weights: a warm start cannot carry those over.
SHAPE_MODEL_FIELDS = ('embedding_dim', 'num_layers', 'num_heads', 'intermediate_dim', 'pooling')


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
  # TUNABLE_TRAINING_FIELDS>'.
  search_space: Tuple[Tuple[str, Tuple[Union[bool, int, float, str], ...]], ...] = (
      ('model.num_layers', (1, 2, 3)),
      ('model.embedding_dim', (128, 256)),
      ('model.dropout', (0.1, 0.2, 0.3)),
      ('training.learning_rate', (5e-4, 1e-3, 2e-3)),
  )

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


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
  """Evaluator: the thresholds a model must pass to be blessed."""
  accuracy_lower_bound: float = 0.75
  # A candidate may be at most this much less accurate than the last blessed model.
  accuracy_regression_tolerance: float = 0.01


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  pipeline_name: str = 'text_classifier'
  model_name: str = 'text_classifier'
  # Holds the pipeline root and the ml-metadata sqlite file of local runs.
  output_dir: str = os.path.join(REPO_ROOT, 'tfx_output')
  # TF Serving's model base path: versions land in <serving_model_dir>/<model_name>/<version>/.
  serving_model_dir: str = os.path.join(REPO_ROOT, 'serving_model')
  beam_pipeline_args: Tuple[str, ...] = ('--direct_running_mode=in_memory',)
  # The curated schema the data is validated against (ImportSchemaGen); empty: infer one with
  # SchemaGen. Its label domain must list the label names below.
  schema_file: str = os.path.join(REPO_ROOT, 'pipeline', 'schema', 'sst2_schema.pbtxt')
  enable_cache: bool = True
  ingestion: IngestionSettings = IngestionSettings()
  preprocessing: PreprocessingSettings = PreprocessingSettings()
  model: ModelSettings = ModelSettings()
  training: TrainingSettings = TrainingSettings()
  tuning: TuningSettings = TuningSettings()
  evaluation: EvaluationSettings = EvaluationSettings()

  def __post_init__(self):
    if self.training.warm_start and self.tuning.enabled:
      reshaping = [name for name, _ in self.tuning.search_space
                   if name.partition('.')[2] in SHAPE_MODEL_FIELDS and name.startswith('model.')]
      if reshaping:
        raise ValueError(f'warm_start keeps the base model\'s architecture, so the Tuner cannot '
                         f'search {reshaping}; remove them from tuning.search_space.')

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, 'pipeline_root', self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, 'metadata', self.pipeline_name, 'metadata.sqlite')

  @property
  def push_destination(self) -> str:
    return os.path.join(self.serving_model_dir, self.model_name)

  @classmethod
  def from_env(cls, **overrides) -> 'PipelineConfig':
    """Defaults, then the environment: TEXT_CLASSIFIER_{DATA_ROOT,OUTPUT_DIR,SERVING_DIR} set paths,
    and TEXT_CLASSIFIER_OVERRIDES (JSON, e.g. '{"training": {"epochs": 2}}') any other field."""
    config = cls(**overrides)
    config = with_overrides(config, json.loads(os.environ.get('TEXT_CLASSIFIER_OVERRIDES', '{}')))
    data_root = os.environ.get('TEXT_CLASSIFIER_DATA_ROOT')
    if data_root:
      config = dataclasses.replace(
          config, ingestion=dataclasses.replace(config.ingestion, data_root=data_root))
    return dataclasses.replace(
        config,
        output_dir=os.environ.get('TEXT_CLASSIFIER_OUTPUT_DIR', config.output_dir),
        serving_model_dir=os.environ.get('TEXT_CLASSIFIER_SERVING_DIR', config.serving_model_dir))


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


@dataclasses.dataclass(frozen=True)
class CloudSettings:
  """Google Cloud, for pipeline/kubeflow_v2_runner.py and pipeline/schedule.py: Vertex AI Pipelines
  runs every component in `image`, the Beam components on Dataflow and the Trainer as a Vertex AI
  Training job. The defaults are placeholders; TEXT_CLASSIFIER_CLOUD_OVERRIDES (JSON, e.g.
  '{"project": "acme-ml", "region": "europe-west4"}') sets any field (`from_env`)."""
  project: str = 'my-project'
  region: str = 'us-central1'
  # The pipeline image (Dockerfile) in Artifact Registry; the Dataflow workers run it too.
  image: str = 'us-central1-docker.pkg.dev/my-project/pipelines/text-classifier:latest'
  # Where the Dockerfile puts this repository, with files the pipeline reads (the schema).
  image_repo_root: str = '/pipeline'
  # The raw files (IngestionSettings.data_root, same patterns) and the outputs, in Cloud Storage.
  # The pipeline root is <output_dir>/pipeline_root/<pipeline name>, as for local runs.
  data_root: str = 'gs://my-bucket/data/sst2'
  output_dir: str = 'gs://my-bucket/text_classifier'
  # TF Serving's model base path: the Pusher copies blessed models to <this>/<model_name>/<version>.
  serving_model_dir: str = 'gs://my-bucket/text_classifier/serving_model'
  # Dataflow, for the Beam components (cleaning ExampleGen, StatisticsGen, Transform, Evaluator).
  dataflow_temp_location: str = 'gs://my-bucket/text_classifier/tmp'
  dataflow_machine_type: str = 'n1-standard-4'
  dataflow_max_workers: int = 10
  # Vertex AI Training for the Trainer (runner flag --accelerator): one machine with several GPUs,
  # trained with MirroredStrategy ...
  gpu_machine_type: str = 'n1-standard-16'
  gpu_type: str = 'NVIDIA_TESLA_T4'
  gpu_count: int = 2
  # ... or a TPU VM, trained with TPUStrategy. TPU VMs need TensorFlow's TPU VM build and libtpu,
  # hence an image of its own (see the Dockerfile).
  tpu_machine_type: str = 'cloud-tpu'
  tpu_type: str = 'TPU_V3'
  tpu_count: int = 8
  tpu_image: str = 'us-central1-docker.pkg.dev/my-project/pipelines/text-classifier-tpu:latest'

  @property
  def beam_pipeline_args(self) -> Tuple[str, ...]:
    """Dataflow, with the workers running the pipeline image, which holds this package and the
    TF Text ops. (`--setup_file` would have stock workers pip-install TFX 1.16, which declares
    Python < 3.11.)"""
    return ('--runner=DataflowRunner',
            f'--project={self.project}',
            f'--region={self.region}',
            f'--temp_location={self.dataflow_temp_location}',
            f'--sdk_container_image={self.image}',
            '--sdk_location=container',
            f'--machine_type={self.dataflow_machine_type}',
            f'--max_num_workers={self.dataflow_max_workers}')

  def worker_pool_specs(self, accelerator: str) -> list:
    """Vertex AI CustomJob worker pools for the Trainer: one replica, `gpu` or `tpu`."""
    machine_spec, image = {
        'gpu': ({'machine_type': self.gpu_machine_type, 'accelerator_type': self.gpu_type,
                 'accelerator_count': self.gpu_count}, self.image),
        'tpu': ({'machine_type': self.tpu_machine_type, 'accelerator_type': self.tpu_type,
                 'accelerator_count': self.tpu_count}, self.tpu_image),
    }[accelerator]
    return [{'machine_spec': machine_spec, 'replica_count': 1,
             'container_spec': {'image_uri': image}}]

  @staticmethod
  def training_overrides(accelerator: str) -> dict:
    """The TrainingSettings the accelerator implies; on a TPU VM the TPU is local to the process."""
    return {'gpu': {'distribution_strategy': 'mirrored'},
            'tpu': {'distribution_strategy': 'tpu', 'tpu_address': 'local'}}[accelerator]

  @classmethod
  def from_env(cls) -> 'CloudSettings':
    overrides = json.loads(os.environ.get('TEXT_CLASSIFIER_CLOUD_OVERRIDES', '{}'))
    return with_overrides(cls(), overrides)
