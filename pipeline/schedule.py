"""Submits a compiled pipeline definition (pipeline/kubeflow_v2_runner.py) to Vertex AI Pipelines
or to a Kubeflow Pipelines endpoint, once or on a cron schedule.

    python -m pipeline.schedule vertex --definition pipeline.json [--cron '0 3 * * 1'] \
        [--project P --region R --pipeline-root gs://... --service-account SA_EMAIL]
    python -m pipeline.schedule kfp --definition pipeline.yaml --host https://HOST \
        [--cron '0 0 3 * * 1'] [--pipeline-root gs://... --service-account K8S_SERVICE_ACCOUNT]

Vertex AI takes the runner's .json or .yaml output, Kubeflow Pipelines only .yaml. Vertex AI cron
has five fields (a 'TZ=Europe/Berlin ' prefix sets the time zone), Kubeflow Pipelines' six (seconds
first). Project and region default to CloudSettings (pipeline/config.py); the pipeline root to the
one compiled into a .json definition. Credentials: Application Default Credentials for Vertex AI,
the kfp client's usual ones (e.g. in-cluster) for Kubeflow Pipelines.
"""

import argparse

import kfp
from google.cloud import aiplatform

from models.settings import SettingsError
from pipeline.config import CloudSettings

NAME = 'text-classifier'  # display name of runs, schedules and the Kubeflow Pipelines experiment


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  try:
    cloud = CloudSettings.from_env()
  except SettingsError as error:
    parser.exit(2, f'error: {error}\n')
  parser.add_argument('target', choices=('vertex', 'kfp'))
  parser.add_argument('--definition', required=True, help='the compiled pipeline definition')
  parser.add_argument('--cron', help='run on this schedule instead of once')
  parser.add_argument('--pipeline-root', help='overrides the compiled pipeline root')
  parser.add_argument('--service-account', help='the identity the runs have')
  parser.add_argument('--project', default=cloud.project, help='Vertex AI (default %(default)s)')
  parser.add_argument('--region', default=cloud.region, help='Vertex AI (default %(default)s)')
  parser.add_argument('--host', help='Kubeflow Pipelines endpoint (default: KF_PIPELINES_ENDPOINT)')
  return parser.parse_args(argv)


def vertex_job(args: argparse.Namespace, credentials=None) -> aiplatform.PipelineJob:
  """The Vertex AI pipeline run; nothing is sent before `submit` or a schedule's `create`."""
  return aiplatform.PipelineJob(
      display_name=NAME, template_path=args.definition, pipeline_root=args.pipeline_root,
      project=args.project, location=args.region, credentials=credentials)


def vertex_schedule(job: aiplatform.PipelineJob) -> aiplatform.PipelineJobSchedule:
  return aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=NAME,
                                        credentials=job.credentials)


def kfp_arguments(args: argparse.Namespace) -> dict:
  """Keyword arguments of kfp.Client's create_recurring_run (with --cron, less the experiment id
  the server gives; one run at a time, no backfill after a pause) or
  create_run_from_pipeline_package."""
  common = {'pipeline_root': args.pipeline_root, 'service_account': args.service_account}
  if args.cron:
    return {'job_name': NAME, 'cron_expression': args.cron, 'max_concurrency': 1,
            'no_catchup': True, 'pipeline_package_path': args.definition, **common}
  return {'pipeline_file': args.definition, 'run_name': NAME, 'experiment_name': NAME, **common}


def submit_to_vertex(args: argparse.Namespace) -> None:
  job = vertex_job(args)
  if args.cron:
    vertex_schedule(job).create(cron=args.cron, service_account=args.service_account)
  else:
    job.submit(service_account=args.service_account)


def submit_to_kfp(args: argparse.Namespace) -> None:
  client = kfp.Client(host=args.host)
  if args.cron:
    experiment = client.create_experiment(NAME)
    client.create_recurring_run(experiment_id=experiment.experiment_id, **kfp_arguments(args))
  else:
    client.create_run_from_pipeline_package(**kfp_arguments(args))


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.target == 'vertex':
    submit_to_vertex(args)
  else:
    submit_to_kfp(args)


if __name__ == '__main__':
  main()
