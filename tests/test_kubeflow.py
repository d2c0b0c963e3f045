"""The pipeline compiled for Vertex AI / Kubeflow Pipelines (pipeline/kubeflow_v2_runner.py), and
its submission (pipeline/schedule.py) up to the calls that would reach Google Cloud or a Kubeflow
Pipelines server."""

import dataclasses
import inspect
import json
import os

import kfp
import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from pipeline import kubeflow_v2_runner, schedule
from models.settings import REPO_ROOT
from pipeline.config import CloudSettings, PipelineConfig
from pipeline.pipeline import create_pipeline

VERTEX = tfx.extensions.google_cloud_ai_platform
CLOUD = CloudSettings(
    project='test-project', region='europe-west4',
    image='europe-west4-docker.pkg.dev/test-project/pipelines/text-classifier:test',
    tpu_image='europe-west4-docker.pkg.dev/test-project/pipelines/text-classifier-tpu:test',
    data_root='gs://test-bucket/data', output_dir='gs://test-bucket/out',
    serving_model_dir='gs://test-bucket/serving', dataflow_temp_location='gs://test-bucket/tmp')
PIPELINE_ROOT = 'gs://test-bucket/out/pipeline_root/sst2'
# The accelerator flag -> (worker pool accelerator, worker image, tf.distribute strategy).
ACCELERATORS = {'gpu': ('NVIDIA_TESLA_T4', CLOUD.image, 'mirrored'),
                'tpu': ('TPU_V3', CLOUD.tpu_image, 'tpu')}


def compile_with_runner(output: str, accelerator: str, cloud: CloudSettings = CLOUD) -> None:
  """`python -m pipeline.kubeflow_v2_runner`, with `cloud` set through the environment."""
  with pytest.MonkeyPatch.context() as env:
    env.setenv('TEXT_CLASSIFIER_CLOUD_OVERRIDES', json.dumps(dataclasses.asdict(cloud)))
    kubeflow_v2_runner.main(['--output', output, '--accelerator', accelerator])


@pytest.fixture(scope='module', params=sorted(ACCELERATORS))
def compiled(request, tmp_path_factory):
  """(accelerator, path of the compiled PipelineJob JSON, its contents)."""
  path = str(tmp_path_factory.mktemp('kubeflow') / 'pipeline.json')
  compile_with_runner(path, request.param)
  with open(path, encoding='utf-8') as f:
    return request.param, path, json.load(f)


def tasks(definition: dict) -> dict:
  return definition['pipelineSpec']['root']['dag']['tasks']


def executor(definition: dict, task: str) -> dict:
  return definition['pipelineSpec']['deploymentSpec']['executors'][f'{task}_executor']


def parameter(definition: dict, task: str, name: str):
  parameters = tasks(definition)[task]['inputs']['parameters']
  return parameters[name]['runtimeValue']['constantValue']['stringValue']


def test_every_component_of_the_local_pipeline_is_compiled(compiled):
  _, _, definition = compiled
  for node in create_pipeline(PipelineConfig()).components:
    if node.id == 'latest_blessed_model_resolver':
      # A resolver compiles to one query per input.
      assert f'{node.id}-model-resolver' in tasks(definition)
      assert f'{node.id}-model-blessing-resolver' in tasks(definition)
    else:
      assert node.id in tasks(definition)


def test_the_definition_loads_as_a_kfp_pipeline_job(compiled):
  _, _, definition = compiled
  job = json_format.ParseDict(definition, pipeline_spec_pb2.PipelineJob())
  spec = json_format.ParseDict(definition['pipelineSpec'], pipeline_spec_pb2.PipelineSpec())
  assert job.runtime_config.gcs_output_directory == PIPELINE_ROOT
  assert spec.pipeline_info.name == 'sst2'
  assert set(spec.root.dag.tasks) == set(tasks(definition))


def test_every_step_runs_in_the_configured_image(compiled):
  _, _, definition = compiled
  executors = definition['pipelineSpec']['deploymentSpec']['executors']
  containers = [spec['container'] for spec in executors.values() if 'container' in spec]
  # Every node but the resolver, which Vertex AI runs itself.
  assert len(containers) == len(create_pipeline(PipelineConfig()).components) - 1
  assert {container['image'] for container in containers} == {CLOUD.image}


def test_trainer_runs_on_vertex_ai_training_with_the_accelerator(compiled):
  accelerator, _, definition = compiled
  accelerator_type, image, strategy = ACCELERATORS[accelerator]
  args = executor(definition, 'Trainer')['container']['args']
  assert args[args.index('--executor_class_path') + 1] == (
      'tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor')

  custom_config = json.loads(parameter(definition, 'Trainer', 'custom_config'))
  assert custom_config[VERTEX.ENABLE_VERTEX_KEY] is True
  assert custom_config[VERTEX.VERTEX_REGION_KEY] == 'europe-west4'
  training_args = custom_config[VERTEX.TRAINING_ARGS_KEY]
  assert training_args['project'] == 'test-project'
  [pool] = training_args['job_spec']['worker_pool_specs']
  assert pool['machine_spec']['accelerator_type'] == accelerator_type
  assert pool['machine_spec']['accelerator_count'] > 0
  assert pool['container_spec']['image_uri'] == image
  assert custom_config['training']['distribution_strategy'] == strategy
  assert custom_config['model'] == dataclasses.asdict(PipelineConfig().model)


def test_beam_components_run_on_dataflow_in_the_image(compiled):
  _, _, definition = compiled
  for task in ('TextCleaningExampleGen', 'StatisticsGen', 'Transform', 'Evaluator'):
    args = executor(definition, task)['container']['args']
    for arg in ('--runner=DataflowRunner', '--project=test-project', '--region=europe-west4',
                '--temp_location=gs://test-bucket/tmp', f'--sdk_container_image={CLOUD.image}'):
      assert arg in args, (task, arg)


def test_data_outputs_and_pushed_models_are_in_cloud_storage(compiled):
  _, _, definition = compiled
  assert definition['runtimeConfig']['gcsOutputDirectory'] == PIPELINE_ROOT
  assert parameter(definition, 'TextCleaningExampleGen', 'input_base') == 'gs://test-bucket/data'
  push_destination = json.loads(parameter(definition, 'Pusher', 'push_destination'))
  assert push_destination['filesystem']['base_directory'] == 'gs://test-bucket/serving/sst2'
  # The schema is generated in the pipeline from the dataset's description.
  assert json.loads(parameter(definition, 'DescribedSchemaGen', 'label_names_json')) == ['0', '1']


def test_a_curated_schema_in_this_repository_is_read_from_the_image():
  curated = os.path.join(REPO_ROOT, 'pipeline', 'datasets', 'curated_schema.pbtxt')
  config = kubeflow_v2_runner.cloud_config(PipelineConfig(schema_file=curated), CLOUD, 'none')
  assert config.schema_file == '/pipeline/pipeline/datasets/curated_schema.pbtxt'


def test_data_or_a_schema_the_cloud_cannot_read_is_refused():
  with pytest.raises(ValueError, match="Dataset 'sst2' has a local data_root"):
    kubeflow_v2_runner.cloud_config(PipelineConfig(), dataclasses.replace(CLOUD, data_root=''),
                                    'none')
  with pytest.raises(ValueError, match='outside this repository'):
    kubeflow_v2_runner.cloud_config(PipelineConfig(schema_file='/home/me/schema.pbtxt'), CLOUD,
                                    'none')


def test_ingestion_resolves_spans_and_fingerprints_files_before_its_cache_is_checked(compiled):
  _, _, definition = compiled
  # TFX's file-based ExampleGen driver runs first on every scheduled run: it resolves the newest
  # span and fingerprints the files, so new data is read and unchanged data is served from cache.
  driver = executor(definition, 'TextCleaningExampleGen')['container']['lifecycle']['preCacheCheck']
  assert driver['command'][-1] == 'tfx.orchestration.kubeflow.v2.file_based_example_gen.driver'
  assert tasks(definition)['TextCleaningExampleGen']['cachingOptions'] == {'enableCache': True}


def test_a_span_dataset_compiles_with_its_window_drift_check_and_several_training_machines(
    tmp_path):
  dataset = tmp_path / 'reviews.yaml'
  dataset.write_text("name: reviews\ndata_root: gs://reviews/raw\n"
                     "train: 'span-{SPAN}/train-*.tsv'\neval: 'span-{SPAN}/eval.tsv'\n"
                     "window: 3\ntext_columns: [text]\nlabel_column: label\n"
                     "drift: {label_linf: 0.2, on_drift: warn}\n")
  path = str(tmp_path / 'pipeline.json')
  with pytest.MonkeyPatch.context() as env:
    env.setenv('TEXT_CLASSIFIER_CLOUD_OVERRIDES', json.dumps(dataclasses.asdict(CLOUD)))
    kubeflow_v2_runner.main(['--output', path, '--dataset', str(dataset), '--workers', '3'])
  with open(path, encoding='utf-8') as f:
    definition = json.load(f)
  input_config = json.loads(parameter(definition, 'TextCleaningExampleGen', 'input_config'))
  assert [split['pattern'] for split in input_config['splits']] == [
      'span-{SPAN}/train-*.tsv', 'span-{SPAN}/eval.tsv']
  assert 'preCacheCheck' in executor(definition, 'TextCleaningExampleGen')['container']['lifecycle']
  assert {'DistributionValidator', 'DriftGate'} <= set(tasks(definition))
  assert parameter(definition, 'DriftGate', 'on_drift') == 'warn'
  trainer = json.loads(parameter(definition, 'Trainer', 'train_args'))
  assert trainer['splits'] == ['train', 'train_minus_1', 'train_minus_2']
  custom_config = json.loads(parameter(definition, 'Trainer', 'custom_config'))
  assert custom_config['training']['distribution_strategy'] == 'multi_worker'
  chief, workers = custom_config[VERTEX.TRAINING_ARGS_KEY]['job_spec']['worker_pool_specs']
  assert (chief['replica_count'], workers['replica_count']) == (1, 2)
  assert chief['machine_spec'] == workers['machine_spec']
  assert workers['machine_spec']['accelerator_count'] > 0


def test_several_training_machines_are_gpu_machines(tmp_path, capsys):
  with pytest.raises(SystemExit):
    kubeflow_v2_runner.main(['--output', str(tmp_path / 'p.json'), '--accelerator', 'tpu',
                             '--workers', '2'])
  with pytest.raises(SystemExit):
    kubeflow_v2_runner.main(['--output', str(tmp_path / 'p.json'), '--workers', '0'])
  assert 'gpu_workers = 0: input should be greater than 0.' in capsys.readouterr().err


def test_a_dataset_file_names_the_cloud_pipeline_and_keeps_its_cloud_data(tmp_path):
  dataset = tmp_path / 'news_v2.yaml'
  dataset.write_text('name: news_v2\ndata_root: gs://news-bucket/raw\ntrain: train.csv\n'
                     "columns: [class, title, body]\ntext_columns: [title, body]\n"
                     "label_column: class\nlabels: {'1': World, '2': Sports}\n")
  path = str(tmp_path / 'pipeline.json')
  with pytest.MonkeyPatch.context() as env:
    env.setenv('TEXT_CLASSIFIER_CLOUD_OVERRIDES', json.dumps(dataclasses.asdict(CLOUD)))
    kubeflow_v2_runner.main(['--output', path, '--accelerator', 'none', '--dataset', str(dataset)])
  with open(path, encoding='utf-8') as f:
    definition = json.load(f)
  assert definition['pipelineSpec']['pipelineInfo']['name'] == 'news-v2'
  assert parameter(definition, 'TextCleaningExampleGen', 'input_base') == 'gs://news-bucket/raw'
  assert json.loads(parameter(definition, 'DescribedSchemaGen', 'label_names_json')) == ['1', '2']
  push_destination = json.loads(parameter(definition, 'Pusher', 'push_destination'))
  assert push_destination['filesystem']['base_directory'] == 'gs://test-bucket/serving/news_v2'


def test_yaml_output_is_a_pipeline_spec_and_no_accelerator_trains_in_the_pipeline(tmp_path):
  path = str(tmp_path / 'pipeline.yaml')
  compile_with_runner(path, 'none')
  with open(path, encoding='utf-8') as f:
    spec = json_format.ParseDict(yaml.safe_load(f), pipeline_spec_pb2.PipelineSpec())
  args = list(spec.deployment_spec['executors']['Trainer_executor']['container']['args'])
  assert args[args.index('--executor_class_path') + 1] == (
      'tfx.components.trainer.executor.GenericExecutor')
  custom_config = json.loads(spec.root.dag.tasks['Trainer'].inputs.parameters['custom_config']
                             .runtime_value.constant_value.string_value)
  assert set(custom_config) == {'model', 'training', 'class_display_names'}  # no Vertex keys


def test_vertex_submission_and_schedule_carry_the_definition(compiled):
  _, path, definition = compiled
  args = schedule.parse_args(['vertex', '--definition', path, '--project', 'test-project',
                              '--region', 'europe-west4'])
  job = schedule.vertex_job(args, credentials=AnonymousCredentials())
  assert (job.project, job.location) == ('test-project', 'europe-west4')
  assert job.runtime_config.gcs_output_directory == PIPELINE_ROOT
  assert set(job.pipeline_spec['root']['dag']['tasks']) == set(tasks(definition))

  # What create() would send, less the cron and service account it adds.
  request = schedule.vertex_schedule(job)._gca_resource  # pylint: disable=protected-access
  assert request.display_name == schedule.NAME
  assert request.create_pipeline_job_request.parent == (
      'projects/test-project/locations/europe-west4')
  pipeline_job = request.create_pipeline_job_request.pipeline_job
  assert pipeline_job.runtime_config.gcs_output_directory == PIPELINE_ROOT


def test_vertex_submission_takes_another_pipeline_root(compiled):
  _, path, _ = compiled
  args = schedule.parse_args(['vertex', '--definition', path, '--pipeline-root', 'gs://other/root'])
  job = schedule.vertex_job(args, credentials=AnonymousCredentials())
  assert job.runtime_config.gcs_output_directory == 'gs://other/root'


@pytest.mark.parametrize('cron', ['0 0 3 * * 1', None])
def test_kfp_arguments_fit_the_client_calls(cron):
  argv = ['kfp', '--definition', 'pipeline.yaml', '--host', 'https://kfp.example.com',
          '--pipeline-root', 'gs://test-bucket/root', '--service-account', 'pipeline-runner']
  arguments = schedule.kfp_arguments(schedule.parse_args(argv + (['--cron', cron] if cron else [])))
  if cron:
    call = inspect.signature(kfp.Client.create_recurring_run).bind(
        None, experiment_id='from-the-server', **arguments)
    assert call.arguments['cron_expression'] == cron
    assert call.arguments['pipeline_package_path'] == 'pipeline.yaml'
  else:
    call = inspect.signature(kfp.Client.create_run_from_pipeline_package).bind(None, **arguments)
    assert call.arguments['pipeline_file'] == 'pipeline.yaml'
  assert call.arguments['pipeline_root'] == 'gs://test-bucket/root'
  assert call.arguments['service_account'] == 'pipeline-runner'
