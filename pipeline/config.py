"""Every tunable of the pipeline, in one place.

`PipelineConfig` is what runners build the pipeline from: the stages' settings (defined beside
the code that reads them, in models/settings.py) plus where things live and what blesses a model.
Its nested settings objects are handed to module code as plain dicts (`custom_config`), so
Transform and Trainer see exactly these values. Runners build it from a dataset file
(models/dataset_file.py; pipeline/datasets/sst2.yaml, the bundled SST-2 data, by default), then
the environment (see `from_env`). The local runner then checks that the input files are here
(`with_local_data`); SST-2's fall back to a downloaded copy (pipeline/sst2_data.py).
"""

import dataclasses
import glob
import json
import os
from typing import Tuple

from models import dataset_file
from models.backbone_handle import missing_local_backbone
from models.settings import (DEFAULT_MODEL_NAME, REPO_ROOT, SHAPE_MODEL_FIELDS,
                             DistillationSettings, DriftSettings, IngestionSettings, ModelSettings,
                             PositiveInt, PreprocessingSettings, SettingsError, Share, StrictBool,
                             TrainingSettings, TuningSettings, merge, resolve_search_space,
                             settings_dataclass, student_custom_config, with_overrides)
from pipeline import sst2_data


# The bundled data's dataset file: what runs use when none is named.
DEFAULT_DATASET_FILE = os.path.join(REPO_ROOT, 'pipeline', 'datasets', 'sst2.yaml')


def dataset_path(dataset: str = '') -> str:
  """The dataset file a run reads: `dataset`, else TEXT_CLASSIFIER_DATASET, else SST-2's."""
  return dataset or os.environ.get('TEXT_CLASSIFIER_DATASET') or DEFAULT_DATASET_FILE


def json_from_env(name: str) -> dict:
  """The JSON object in environment variable `name` ({} if unset), or an error naming it."""
  text = os.environ.get(name, '') or '{}'
  try:
    value = json.loads(text)
  except json.JSONDecodeError as error:
    raise SettingsError(f'{name} is not valid JSON ({error}): {text!r}') from None
  if not isinstance(value, dict):
    raise SettingsError(f'{name} must be a JSON object like {{"training": {{"epochs": 2}}}}, '
                        f'got {text!r}.')
  return value


@settings_dataclass
class EvaluationSettings:
  """Evaluator: the thresholds a model must pass to be blessed."""
  accuracy_lower_bound: Share = 0.75
  """The eval split's accuracy a model needs to be blessed."""
  accuracy_regression_tolerance: Share = 0.01
  """A candidate may be at most this much less accurate than the last blessed model."""


@settings_dataclass
class PipelineConfig:
  """The whole run: names, where outputs go, and every stage's settings."""
  pipeline_name: str = DEFAULT_MODEL_NAME
  """The dataset's name unless set: names the pipeline root and the metadata store."""
  model_name: str = DEFAULT_MODEL_NAME
  """The dataset's name unless set: the TF Serving model's name."""
  output_dir: str = os.path.join(REPO_ROOT, 'tfx_output')
  """Holds the pipeline root and the ml-metadata sqlite file of local runs
  (TEXT_CLASSIFIER_OUTPUT_DIR)."""
  serving_model_dir: str = os.path.join(REPO_ROOT, 'serving_model')
  """TF Serving's model base path: versions land in <serving_model_dir>/<model_name>/<version>/
  (TEXT_CLASSIFIER_SERVING_DIR)."""
  beam_pipeline_args: Tuple[str, ...] = ('--direct_running_mode=in_memory',)
  """Options for the Beam components (cleaning ExampleGen, StatisticsGen, Transform, Evaluator);
  DirectRunner in memory locally."""
  schema_file: str = ''
  """A curated schema the data is validated against (ImportSchemaGen). Empty: the schema is
  generated from the ingestion settings (a text feature, and the label names as its domain)."""
  enable_cache: StrictBool = True
  """Components whose inputs and settings are unchanged reuse their last outputs (TFX's cache)."""
  ingestion: IngestionSettings = IngestionSettings()
  preprocessing: PreprocessingSettings = PreprocessingSettings()
  model: ModelSettings = ModelSettings()
  training: TrainingSettings = TrainingSettings()
  tuning: TuningSettings = TuningSettings()
  evaluation: EvaluationSettings = EvaluationSettings()
  drift: DriftSettings = DriftSettings()
  """Only read with spans."""
  distillation: DistillationSettings = DistillationSettings()

  def __post_init__(self):
    if self.distillation.enabled:
      student_custom_config(self.model, self.distillation)  # refuses a mismatched student
    if self.warm_start and self.tuning.enabled:
      reshaping = [name for name, _ in resolve_search_space(self.model, self.tuning)
                   if name.partition('.')[2] in SHAPE_MODEL_FIELDS and name.startswith('model.')]
      if reshaping:
        raise ValueError(f'warm_start keeps the base model\'s architecture, so the Tuner cannot '
                         f'search {reshaping}; remove them from tuning.search_space.')

  @property
  def warm_start(self) -> bool:
    """training.warm_start, or where it is unset, whether this is a span dataset with a
    pretrained backbone: new spans continue the fine-tuned model."""
    if self.training.warm_start is not None:
      return self.training.warm_start
    return self.ingestion.has_spans and self.model.architecture == 'pretrained'

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, 'pipeline_root', self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, 'metadata', self.pipeline_name, 'metadata.sqlite')

  @property
  def push_destination(self) -> str:
    return os.path.join(self.serving_model_dir, self.model_name)

  @property
  def student_model_name(self) -> str:
    return f'{self.model_name}_student'

  @property
  def student_push_destination(self) -> str:
    """Where the distilled student goes when distillation.push is 'both' (when 'student', it
    takes push_destination)."""
    return os.path.join(self.serving_model_dir, self.student_model_name)

  @classmethod
  def from_env(cls, dataset: str = '') -> 'PipelineConfig':
    """Defaults, then the dataset file (`dataset`, else TEXT_CLASSIFIER_DATASET, else SST-2's),
    then the environment: TEXT_CLASSIFIER_{DATA_ROOT,OUTPUT_DIR,SERVING_DIR} set paths, and
    TEXT_CLASSIFIER_OVERRIDES (JSON, e.g. '{"training": {"epochs": 2}}') any other field.
    The whole is checked at once: a SettingsError names what is not allowed, in one line."""
    paths = {'output_dir': os.environ.get('TEXT_CLASSIFIER_OUTPUT_DIR'),
             'serving_model_dir': os.environ.get('TEXT_CLASSIFIER_SERVING_DIR'),
             'ingestion': {'data_root': os.environ.get('TEXT_CLASSIFIER_DATA_ROOT')}}
    overrides = merge(
        dataset_file.load(dataset_path(dataset)),
        merge(json_from_env('TEXT_CLASSIFIER_OVERRIDES'), _set_values(paths)))
    return with_overrides(cls(), overrides)


def _set_values(values: dict) -> dict:
  """`values` without the entries left unset (None, empty), nested too."""
  kept = {key: _set_values(value) if isinstance(value, dict) else value
          for key, value in values.items()}
  return {key: value for key, value in kept.items() if value}


def check_local_files(config: PipelineConfig) -> None:
  """The settings that name files on this machine name existing ones (a curated schema, a
  backbone directory or package), or a SettingsError saying which. Remote paths are not
  checked."""
  schema = config.schema_file
  if schema and '://' not in schema and not os.path.isfile(schema):
    raise SettingsError(f'schema_file = {schema!r}: no such file (a curated schema, '
                        'schema.pbtxt; leave it empty to generate one from the dataset file).')
  if config.model.architecture == 'pretrained':
    missing = missing_local_backbone(config.model.backbone)
    if missing:
      raise SettingsError(missing)


class MissingDataError(SettingsError):
  """The run's input files are not on this machine; says where it looked and how to provide
  them."""


def missing_data(ingestion: IngestionSettings) -> str:
  """The first of the run's inputs that is not on this machine, a path or pattern ('' when
  none): each file pattern must match a file. With spans, only data_root must exist: resolving
  spans is the cleaning ExampleGen's job, with its own errors. Remote (gs://) data is not
  checked."""
  root = ingestion.data_root
  if '://' in root:
    return ''
  if not os.path.isdir(root):
    return root
  if ingestion.has_spans:
    return ''
  for pattern in (ingestion.train_pattern, ingestion.eval_pattern, ingestion.golden_pattern):
    if pattern and not glob.glob(os.path.join(root, pattern)):
      return os.path.join(root, pattern)
  return ''


def with_local_data(config: PipelineConfig, dataset: str = '') -> PipelineConfig:
  """`config` once its input files are known to be here, before anything runs. The default
  dataset (SST-2) falls back to the fetched copy (pipeline/sst2_data.py): its data_root becomes
  the cache folder, downloaded into first if empty. A MissingDataError otherwise, in one line."""
  missing = missing_data(config.ingestion)
  if not missing:
    return config
  if os.path.abspath(dataset_path(dataset)) != DEFAULT_DATASET_FILE:
    raise MissingDataError(
        f'No input files at {missing} (dataset file {dataset_path(dataset)}). Put the files '
        'there, set TEXT_CLASSIFIER_DATA_ROOT to the folder holding them, or pass --dataset '
        'FILE describing other data.')
  cache = sst2_data.cache_dir()
  root = config.ingestion.data_root
  if sst2_data.is_complete(cache):
    print(f'SST-2 is not in {root}: reading the copy in {cache}.')
  else:
    print(f'SST-2 is not in {root}: downloading it into {cache}.', flush=True)
    try:
      sst2_data.fetch(cache, sst2_data.archive_url(), sst2_data.SHA256)
    except sst2_data.FetchError as error:
      raise MissingDataError(
          f"SST-2's files are not in {root} nor in {cache}. {error} Or set "
          'TEXT_CLASSIFIER_DATA_ROOT to a folder holding them, or pass --dataset FILE for other '
          'data.') from None
  return dataclasses.replace(
      config, ingestion=dataclasses.replace(config.ingestion, data_root=cache))


@settings_dataclass
class CloudSettings:
  """Google Cloud, for pipeline/kubeflow_v2_runner.py and pipeline/schedule.py: Vertex AI Pipelines
  runs every component in `image`, the Beam components on Dataflow and the Trainer as a Vertex AI
  Training job. The defaults are placeholders; TEXT_CLASSIFIER_CLOUD_OVERRIDES (JSON, e.g.
  '{"project": "acme-ml", "region": "europe-west4"}') sets any field (`from_env`)."""
  project: str = 'my-project'
  """The Google Cloud project that runs the pipeline."""
  region: str = 'us-central1'
  """Vertex AI and Dataflow's region."""
  image: str = 'us-central1-docker.pkg.dev/my-project/pipelines/text-classifier:latest'
  """The pipeline image (Dockerfile) in Artifact Registry; the Dataflow workers run it too."""
  image_repo_root: str = '/pipeline'
  """Where the Dockerfile puts this repository, with files the pipeline reads (a curated
  schema)."""
  data_root: str = ''
  """The raw files in Cloud Storage (the dataset file's patterns under it); replaces a dataset
  file's local data_root. Empty: the dataset file must give a gs:// one."""
  output_dir: str = 'gs://my-bucket/text_classifier'
  """The pipeline root is <output_dir>/pipeline_root/<pipeline name>, as locally."""
  serving_model_dir: str = 'gs://my-bucket/text_classifier/serving_model'
  """TF Serving's model base path: the Pusher copies blessed models to
  <this>/<model_name>/<version>."""
  dataflow_temp_location: str = 'gs://my-bucket/text_classifier/tmp'
  """Dataflow runs the Beam components (cleaning ExampleGen, StatisticsGen, Transform,
  Evaluator)."""
  dataflow_machine_type: str = 'n1-standard-4'
  """Dataflow's worker machines."""
  dataflow_max_workers: PositiveInt = 10
  """Dataflow scales up to this many workers."""
  gpu_machine_type: str = 'n1-standard-16'
  """Vertex AI Training for the Trainer with runner flag --accelerator gpu: machines with
  several GPUs, trained with MirroredStrategy."""
  gpu_type: str = 'NVIDIA_TESLA_T4'
  """The GPUs on each Trainer machine."""
  gpu_count: PositiveInt = 2
  """GPUs per Trainer machine."""
  tpu_machine_type: str = 'cloud-tpu'
  """With --accelerator tpu: a TPU VM, trained with TPUStrategy."""
  tpu_type: str = 'TPU_V3'
  """The TPU the Trainer runs on."""
  tpu_count: PositiveInt = 8
  """TPU cores."""
  tpu_image: str = 'us-central1-docker.pkg.dev/my-project/pipelines/text-classifier-tpu:latest'
  """TPU VMs need TensorFlow's TPU VM build and libtpu, hence an image of its own (see the
  Dockerfile)."""
  gpu_workers: PositiveInt = 1
  """GPU machines the Trainer's job runs on (runner flag --workers): more than one is a chief
  pool and a pool of gpu_workers - 1, trained with MultiWorkerMirroredStrategy through the
  TF_CONFIG Vertex AI sets on each machine. For a growing window of spans."""

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
    """Vertex AI CustomJob worker pools for the Trainer, `gpu` or `tpu`: the chief's pool (one
    replica), and with gpu_workers > 1 a second pool of the other workers."""
    machine_spec, image = {
        'gpu': ({'machine_type': self.gpu_machine_type, 'accelerator_type': self.gpu_type,
                 'accelerator_count': self.gpu_count}, self.image),
        'tpu': ({'machine_type': self.tpu_machine_type, 'accelerator_type': self.tpu_type,
                 'accelerator_count': self.tpu_count}, self.tpu_image),
    }[accelerator]
    pool = {'machine_spec': machine_spec, 'container_spec': {'image_uri': image}}
    workers = self.gpu_workers if accelerator == 'gpu' else 1
    return [{**pool, 'replica_count': 1}] + (
        [{**pool, 'replica_count': workers - 1}] if workers > 1 else [])

  def training_overrides(self, accelerator: str) -> dict:
    """The TrainingSettings the accelerator implies; on a TPU VM the TPU is local to the process.
    Several GPU machines: MultiWorkerMirroredStrategy, which mirrors over each machine's GPUs."""
    return {'gpu': {'distribution_strategy': 'multi_worker' if self.gpu_workers > 1
                    else 'mirrored'},
            'tpu': {'distribution_strategy': 'tpu', 'tpu_address': 'local'}}[accelerator]

  @classmethod
  def from_env(cls) -> 'CloudSettings':
    return with_overrides(cls(), json_from_env('TEXT_CLASSIFIER_CLOUD_OVERRIDES'))
