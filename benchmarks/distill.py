"""Teacher and distilled student in one run, per seed: accuracy on the eval file, serving latency
on raw text, size, and the cost of the teacher's pass over the training split.

    python -m benchmarks.distill [--seeds 42 1 2] [--teacher-dir DIR] [--requests 200]

Reads the newest local run's outputs (`make run`): the cleaned raw examples and the Transform
graph. For each seed it trains a teacher with the Trainer's run_fn on Transform's examples (or
takes --teacher-dir for every seed, whose passes over the data and its augmented copies, made
with the first seed, are then computed once and reused),
then a student with the distillation stage's code (models/distillation.py), with the pipeline's
settings (pipeline/config.py and
TEXT_CLASSIFIER_OVERRIDES, e.g. '{"distillation": {"temperature": 1.0}}'). Models are written
under a temporary directory and deleted at the end.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks.common import eval_accuracy, latest_artifact_dir, read_labelled_tsv
from models import distillation, export, trainer
from models.latency import latencies, probabilities_call, serving_signature
from models.settings import as_custom_config, student_custom_config
from pipeline.config import PipelineConfig


def with_seed(custom_config: dict, seed: int) -> dict:
  return {**custom_config, 'training': {**custom_config['training'], 'seed': seed}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', type=int, nargs='+', default=[42, 1, 2])
  parser.add_argument('--teacher-dir', help='an exported teacher, used for every seed')
  parser.add_argument('--requests', type=int, default=200, help='timed requests per batch size')
  args = parser.parse_args()
  config = PipelineConfig.from_env()
  transform_graph = latest_artifact_dir(config, 'Transform', 'transform_graph')
  transformed_examples = latest_artifact_dir(config, 'Transform', 'transformed_examples')
  raw_examples = latest_artifact_dir(config, 'TextCleaningExampleGen', 'examples')
  ingestion = config.ingestion
  texts, labels = read_labelled_tsv(os.path.join(ingestion.data_root, ingestion.eval_pattern),
                                    ingestion.text_columns[0], ingestion.label_column)
  teacher_config = {'model': as_custom_config(config.model),
                    'training': as_custom_config(config.training)}
  student_config = student_custom_config(config.model, config.distillation)
  print(f"Student: {json.dumps(student_config)}\nEval: {len(texts)} texts; {os.cpu_count()} "
        f'CPUs; {args.requests} timed requests at batch 1 and 32', flush=True)
  print(f"{'seed':>4} {'model':<8} {'accuracy':>8} {'b1 p50':>7} {'b32 p50':>7} {'MB':>6} "
        f"{'train s':>7}  note")
  results = []
  fixed_teacher, fixed_passes = None, None  # with --teacher-dir: loaded and run once
  with tempfile.TemporaryDirectory() as work:
    for seed in args.seeds:
      teacher_dir, teacher_seconds = args.teacher_dir, 0.0
      if not teacher_dir:
        started = time.perf_counter()
        teacher_work = os.path.join(work, f'teacher_{seed}')
        trainer.run_fn(trainer.local_fn_args(transform_graph, transformed_examples, teacher_work,
                                             with_seed(teacher_config, seed)))
        teacher_dir, teacher_seconds = (os.path.join(teacher_work, 'serving'),
                                        time.perf_counter() - started)
      started = time.perf_counter()
      student_work = os.path.join(work, f'student_{seed}')
      fn_args = trainer.local_fn_args(transform_graph, raw_examples, student_work,
                                      with_seed(student_config, seed), base_model=teacher_dir)
      if not args.teacher_dir:
        distillation.run_fn(fn_args)
      else:
        setup = trainer.prepare(fn_args)
        if fixed_passes is None:
          fixed_teacher = tf.saved_model.load(teacher_dir)
          train, evaluation = (distillation.teacher_pass(fixed_teacher, files,
                                                         distillation.TEACHER_BATCH_SIZE)
                               for files in (fn_args.train_files, fn_args.eval_files))
          fixed_passes = (train, distillation.augmented_pass(setup, fixed_teacher, train),
                          evaluation)
        distillation.train_student(setup, fixed_teacher, *fixed_passes)
      student_seconds = time.perf_counter() - started
      with open(os.path.join(student_work, 'logs', distillation.TEACHER_PASS_FILE)) as f:
        teacher_pass = json.load(f)
      row = {'seed': seed}
      for name, model_dir, seconds in (('teacher', teacher_dir, teacher_seconds),
                                       ('student', os.path.join(student_work, 'serving'),
                                        student_seconds)):
        serve = serving_signature(model_dir)
        accuracy = eval_accuracy(serve, texts, labels, ingestion.label_names)
        (b1, _), (b32, _) = latencies(probabilities_call(serve), texts, args.requests)
        row[name] = {'accuracy': accuracy, 'b1_p50': b1, 'b32_p50': b32}
        note = (f"teacher pass {teacher_pass['seconds']:.0f} s over {teacher_pass['examples']} "
                f"examples and {teacher_pass['augmented_seconds']:.0f} s over "
                f"{teacher_pass['augmented_examples']} augmented copies (in the first train s "
                'when reused)' if name == 'student' else '')
        print(f'{seed:>4} {name:<8} {accuracy:>8.4f} {b1:>7.2f} {b32:>7.2f} '
              f'{export.megabytes_on_disk(model_dir):>6.1f} {seconds:>7.0f}  {note}', flush=True)
      results.append(row)

  def mean(model: str, key: str) -> float:
    return float(np.mean([r[model][key] for r in results]))

  gap = mean('teacher', 'accuracy') - mean('student', 'accuracy')
  ratio = float(np.mean([r['student']['b1_p50'] / r['teacher']['b1_p50'] for r in results]))
  print(f"Mean over seeds {args.seeds}: teacher {mean('teacher', 'accuracy'):.4f}, student "
        f"{mean('student', 'accuracy'):.4f} ({100 * gap:.2f} points below); student p50 at "
        f'batch 1 = {ratio:.2f} x the teacher\'s')


if __name__ == '__main__':
  main()
