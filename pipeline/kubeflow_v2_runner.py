"""Compiles the pipeline for Vertex AI Pipelines (or Kubeflow Pipelines 2): the same
`create_pipeline` as local runs, with its data and outputs in Cloud Storage, Beam on Dataflow and
the Trainer on Vertex AI Training, into a pipeline definition that pipeline/schedule.py submits.

    python -m pipeline.kubeflow_v2_runner --output pipeline.json [--dataset FILE] \
        [--accelerator gpu|tpu|none] [--workers N]

A `.json` output is a PipelineJob (Vertex AI); a `.yaml` one a PipelineSpec (Kubeflow Pipelines,
and Vertex AI too). Where and on what it runs: `CloudSettings` in pipeline/config.py, overridden by
TEXT_CLASSIFIER_CLOUD_OVERRIDES; model and training settings as for local runs
(TEXT_CLASSIFIER_OVERRIDES). `--accelerator none` trains in the pipeline step itself, on CPUs.
"""

import argparse
import dataclasses
import json
import os
import sys

import yaml
from tfx import v1 as tfx

from models import dataset_file
from models.settings import REPO_ROOT, SettingsError, with_overrides
from pipeline.config import CloudSettings, PipelineConfig
from pipeline.pipeline import create_pipeline

ACCELERATORS = ('gpu', 'tpu', 'none')
VERTEX = tfx.extensions.google_cloud_ai_platform


def cloud_config(config: PipelineConfig, cloud: CloudSettings, accelerator: str) -> PipelineConfig:
  """`config` with Cloud Storage paths, the image's schema file and the accelerator's strategy."""
  schema_file = config.schema_file
  if schema_file.startswith(REPO_ROOT + os.sep):
    schema_file = os.path.join(cloud.image_repo_root, os.path.relpath(schema_file, REPO_ROOT))
  elif schema_file and '://' not in schema_file:
    raise SettingsError(f'schema_file = {schema_file!r} is outside this repository, so not in '
                        'the pipeline image: move it into the repository or to Cloud Storage.')
  # The data must be in Cloud Storage: the dataset file's data_root if it is there already,
  # else CloudSettings.data_root; never silently another dataset's folder.
  data_root = (config.ingestion.data_root if '://' in config.ingestion.data_root
               else cloud.data_root)
  if not data_root:
    raise SettingsError(f'Dataset {config.pipeline_name!r} has a local data_root '
                        f'({config.ingestion.data_root}): give a gs:// data_root in its dataset '
                        'file, or set data_root in TEXT_CLASSIFIER_CLOUD_OVERRIDES.')
  config = dataclasses.replace(
      config,
      pipeline_name=config.pipeline_name.replace('_', '-'),  # Vertex AI allows [a-z0-9-] only
      output_dir=cloud.output_dir,
      serving_model_dir=cloud.serving_model_dir,
      schema_file=schema_file,
      ingestion=dataclasses.replace(config.ingestion, data_root=data_root))
  if accelerator == 'none':
    return config
  return with_overrides(config, {'training': cloud.training_overrides(accelerator)})


def vertex_training_config(cloud: CloudSettings, accelerator: str) -> dict:
  """Trainer custom_config entries read by the Vertex AI Trainer executor: run as a custom job."""
  return {
      VERTEX.ENABLE_VERTEX_KEY: True,
      VERTEX.VERTEX_REGION_KEY: cloud.region,
      VERTEX.TRAINING_ARGS_KEY: {
          'project': cloud.project,
          'job_spec': {'worker_pool_specs': cloud.worker_pool_specs(accelerator)},
      },
  }


def build(config: PipelineConfig, cloud: CloudSettings, accelerator: str) -> tfx.dsl.Pipeline:
  on_vertex_training = accelerator != 'none'
  pipeline = create_pipeline(
      cloud_config(config, cloud, accelerator),
      beam_pipeline_args=list(cloud.beam_pipeline_args),
      trainer_custom_config=(vertex_training_config(cloud, accelerator) if on_vertex_training
                             else None))
  if on_vertex_training:
    [trainer] = [node for node in pipeline.components if node.id == 'Trainer']
    # All that tfx.extensions.google_cloud_ai_platform.Trainer changes: this executor, which runs
    # the same run_fn in a Vertex AI custom job.
    trainer.executor_spec = VERTEX.Trainer.EXECUTOR_SPEC.copy()
  return pipeline


def compile_pipeline(pipeline: tfx.dsl.Pipeline, image: str) -> dict:
  """The pipeline as a PipelineJob dict, every step running in `image`."""
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image))
  # The ingestion step runs TFX's file-based ExampleGen driver first (a pre-cache check): it
  # resolves the newest span and fingerprints its files, so a scheduled run reads a new span or
  # changed files, and is served from cache when nothing changed.
  return runner.run(pipeline, write_out=False)


def write_definition(definition: dict, path: str) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    if path.endswith(('.yaml', '.yml')):
      yaml.safe_dump(definition['pipelineSpec'], f, sort_keys=True)
    else:
      json.dump(definition, f, indent=2, sort_keys=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--output', required=True,
                      help='pipeline definition file: .json (PipelineJob) or .yaml (PipelineSpec)')
  parser.add_argument('--dataset', default=os.environ.get('TEXT_CLASSIFIER_DATASET', ''),
                      metavar='FILE',
                      help='the dataset file (default: pipeline/datasets/sst2.yaml); a local '
                           'data_root is replaced by CloudSettings.data_root, which must then '
                           'be set')
  parser.add_argument('--accelerator', choices=ACCELERATORS, default='gpu',
                      help='Vertex AI Training worker pool for the Trainer (default: %(default)s)')
  parser.add_argument('--workers', type=int, default=None, metavar='N',
                      help='GPU machines for the Trainer: a chief and N-1 workers, trained with '
                           'MultiWorkerMirroredStrategy (default: CloudSettings.gpu_workers)')
  args = parser.parse_args(argv)
  if args.workers is not None and args.accelerator != 'gpu':
    parser.error('--workers takes GPU machines: use it with --accelerator gpu')
  try:  # every setting, before anything is compiled
    cloud = CloudSettings.from_env()
    if args.workers is not None:
      cloud = with_overrides(cloud, {'gpu_workers': args.workers})
    pipeline = build(PipelineConfig.from_env(args.dataset), cloud, args.accelerator)
  except (SettingsError, dataset_file.DatasetFileError) as error:
    print(f'error: {error}', file=sys.stderr)
    raise SystemExit(2) from None
  write_definition(compile_pipeline(pipeline, cloud.image), args.output)
  print(f'Wrote {args.output}; pipeline root {pipeline.pipeline_info.pipeline_root}')


if __name__ == '__main__':
  main()
