"""Serving: the TF Serving configuration files parsed by TF Serving's own protos, the hardened
Kubernetes manifest and the docker command, the warm-up requests inside the exported model, and
the client in-process, on the command line, against stand-in servers and against servers that do
not answer.

No TF Serving binary runs here: the REST and gRPC stand-ins below speak TF Serving's APIs over
the real in-process model, so the client's requests, retries and response parsing run for real.
"""

import concurrent.futures
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
import yaml
from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory, text_format,
                             wrappers_pb2)
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from models import features
from models import warmup
from models.settings import REPO_ROOT
from serving import client, model_config
from tests.helpers import MAX_SEQ_LENGTH, TEXTS

SERVING_DIR = os.path.join(REPO_ROOT, 'serving')
CLASS_NAMES = {'neg', 'pos'}
LONG_TEXT = 'great movie ' * 8334  # 100,008 characters
# Bytes that are not UTF-8, decoded with replacement by the client.
NOT_UTF8 = b'\xff\xfe great'
NOT_UTF8_DECODED = '\ufffd\ufffd great'

# The pip package tensorflow-serving-api ships the API and config protos but not
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto, where BatchingParameters
# lives. This is that message as TF Serving 2.16.1 defines it, field for field.
BATCHING_PARAMETERS_FILE = '''
  name: "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
  package: "tensorflow.serving"
  dependency: "google/protobuf/wrappers.proto"
  syntax: "proto3"
  message_type {
    name: "BatchingParameters"
    field { name: "max_batch_size" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.Int64Value" }
    field { name: "batch_timeout_micros" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.Int64Value" }
    field { name: "max_enqueued_batches" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.Int64Value" }
    field { name: "num_batch_threads" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.Int64Value" }
    field { name: "thread_pool_name" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.StringValue" }
    field { name: "allowed_batch_sizes" number: 6 label: LABEL_REPEATED type: TYPE_INT64 }
    field { name: "pad_variable_length_inputs" number: 7 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "enable_large_batch_splitting" number: 8 label: LABEL_OPTIONAL
            type: TYPE_MESSAGE type_name: ".google.protobuf.BoolValue" }
    field { name: "max_execution_batch_size" number: 9 label: LABEL_OPTIONAL type: TYPE_MESSAGE
            type_name: ".google.protobuf.Int64Value" }
  }
'''


def batching_parameters_class():
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  pool.Add(text_format.Parse(BATCHING_PARAMETERS_FILE, descriptor_pb2.FileDescriptorProto()))
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName('tensorflow.serving.BatchingParameters'))


def read_text(name: str) -> str:
  with open(os.path.join(SERVING_DIR, name), encoding='utf-8') as f:
    return f.read()


def signature_def(model_dir: str, name: str = features.SERVING_SIGNATURE):
  """The SignatureDef TF Serving reads from saved_model.pb."""
  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(model_dir, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  return saved_model.meta_graphs[0].signature_def[name]


def assert_request_matches_signature(request: predict_pb2.PredictRequest, signature) -> None:
  assert request.model_spec.signature_name == features.SERVING_SIGNATURE
  assert set(request.inputs) == set(signature.inputs) == {features.TEXT_KEY}
  for name, tensor in request.inputs.items():
    assert tensor.dtype == signature.inputs[name].dtype == types_pb2.DT_STRING
    assert len(tensor.tensor_shape.dim) == len(signature.inputs[name].tensor_shape.dim) == 1


@pytest.fixture(scope='module')
def serve_text(tiny_model_dir):
  """The tiny model's serving_default signature, called in this process."""
  model = tf.saved_model.load(tiny_model_dir)
  yield model.signatures[features.SERVING_SIGNATURE]  # `model` stays alive: it owns the tables


@pytest.fixture(scope='module')
def in_process(tiny_model_dir):
  return client.SavedModelBackend(tiny_model_dir)


# TF Serving configuration.

def test_batching_parameters_suit_a_two_core_cpu():
  parameters = text_format.Parse(read_text('batching_parameters.pbtxt'),
                                 batching_parameters_class()())
  assert parameters.num_batch_threads.value == 2  # one per core
  # The client's default requests fit in one batch.
  assert parameters.max_batch_size.value >= client.DEFAULT_BATCH_SIZE
  # TF Serving's CPU guidance: 0 to 10 ms.
  assert 0 <= parameters.batch_timeout_micros.value <= 10_000
  assert parameters.max_enqueued_batches.value >= parameters.num_batch_threads.value


def test_kubernetes_deployment_reads_the_pushed_config_and_is_hardened():
  deployment, service = yaml.safe_load_all(read_text('kubernetes.yaml'))
  assert (deployment['kind'], service['kind']) == ('Deployment', 'Service')
  pod = deployment['spec']['template']['spec']
  [container] = pod['containers']
  assert container['image'].startswith('tensorflow/serving:')
  flags = dict(arg.lstrip('-').split('=', 1) for arg in container['args'])
  mounts = {mount['name']: mount for mount in container['volumeMounts']}
  # The config the Pusher writes at the serving root, which is the models volume.
  assert flags['model_config_file'] == os.path.join(mounts['models']['mountPath'],
                                                    model_config.CONFIG_NAME)
  assert flags['model_config_file_poll_wait_seconds'] == '60'
  assert flags['batching_parameters_file'] == os.path.join(mounts['config']['mountPath'],
                                                           'batching_parameters.pbtxt')
  assert flags['enable_batching'] == 'true'
  ports = {port['name']: port['containerPort'] for port in container['ports']}
  assert ports == {'grpc': int(flags['port']), 'rest': int(flags['rest_api_port'])}
  probe = container['readinessProbe']['httpGet']
  assert (probe['path'], probe['port']) == (f'/v1/models/{client.DEFAULT_MODEL_NAME}', 'rest')
  assert service['spec']['selector'] == deployment['spec']['selector']['matchLabels']
  assert {port['targetPort'] for port in service['spec']['ports']} == set(ports)

  # Not root, nothing to escalate to, nothing writable but /tmp, models read-only.
  assert pod['securityContext']['runAsNonRoot'] is True
  assert pod['securityContext']['runAsUser'] > 0
  security = container['securityContext']
  assert security['allowPrivilegeEscalation'] is False
  assert security['readOnlyRootFilesystem'] is True
  assert security['capabilities']['drop'] == ['ALL'] and 'add' not in security['capabilities']
  assert mounts['models']['readOnly'] is True and mounts['config']['readOnly'] is True
  volumes = {volume['name']: volume for volume in pod['volumes']}
  assert volumes['models']['persistentVolumeClaim']['readOnly'] is True
  writable = [mount['mountPath'] for mount in mounts.values() if not mount.get('readOnly')]
  assert writable == ['/tmp'] and 'emptyDir' in volumes[mounts['tmp']['name']]
  resources = container['resources']
  assert set(resources['requests']) == set(resources['limits']) == {'cpu', 'memory'}


def test_docker_command_reads_the_pushed_config():
  readme = read_text('README.md')
  [command] = re.findall(r'docker run .*?(?=\n```)', readme, re.S)
  assert '--model_config_file="$PWD/serving_model/models.config"' in command
  assert '--model_config_file_poll_wait_seconds=60' in command
  # Mounted where the Pusher wrote it, so the config's base paths hold in the container.
  assert 'source="$PWD/serving_model",target="$PWD/serving_model",readonly' in command


# The exported model as TF Serving sees it.

def test_saved_model_cli_lists_a_string_text_input(tiny_model_dir):
  saved_model_cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  result = subprocess.run(
      [saved_model_cli, 'show', '--dir', tiny_model_dir, '--tag_set', 'serve',
       '--signature_def', features.SERVING_SIGNATURE],
      capture_output=True, text=True, check=True)
  assert re.search(r"inputs\['text'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)",
                   result.stdout), result.stdout


def test_export_writes_warmup_requests_that_run_through_the_model(tiny_model_dir, serve_text):
  path = os.path.join(tiny_model_dir, 'assets.extra', 'tf_serving_warmup_requests')
  logs = [prediction_log_pb2.PredictionLog.FromString(record)
          for record in tf.data.TFRecordDataset(path).as_numpy_iterator()]
  assert 0 < len(logs) <= 1000  # TF Serving reads at most 1000
  signature = signature_def(tiny_model_dir)
  batch_sizes = []
  for log in logs:
    request = log.predict_log.request
    assert request.model_spec.name == client.DEFAULT_MODEL_NAME
    assert_request_matches_signature(request, signature)
    texts = tf.make_ndarray(request.inputs[features.TEXT_KEY])
    outputs = serve_text(**{features.TEXT_KEY: tf.constant(texts)})
    assert outputs[features.PROBABILITIES_KEY].shape == (len(texts), 2)
    batch_sizes.append(len(texts))
  assert batch_sizes == [1] * len(warmup.WARMUP_TEXTS) + [len(warmup.WARMUP_TEXTS)]


def test_predict_request_matches_the_signature(tiny_model_dir):
  texts = client.prepare_texts(['a great movie', '', NOT_UTF8])
  request = warmup.predict_request(texts, 'sst2')
  assert request.model_spec.name == 'sst2'
  assert_request_matches_signature(request, signature_def(tiny_model_dir))
  sent = tf.make_ndarray(request.inputs[features.TEXT_KEY])
  assert [text.decode('utf-8') for text in sent] == ['a great movie', '', NOT_UTF8_DECODED]
  body = json.loads(json.dumps(client.rest_request_body(texts)))
  assert body['signature_name'] == features.SERVING_SIGNATURE
  assert body['instances'] == [{features.TEXT_KEY: text} for text in texts]


def test_responses_of_real_outputs_parse(tiny_model_dir, serve_text):
  outputs = {key: value.numpy() for key, value in serve_text(text=tf.constant(TEXTS)).items()}
  labels = [label.decode() for label in outputs[features.PREDICTED_LABEL_KEY]]
  response = predict_pb2.PredictResponse()
  for key, value in outputs.items():
    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
  signature = signature_def(tiny_model_dir)
  assert {key: tensor.dtype for key, tensor in response.outputs.items()} == {
      key: tensor.dtype for key, tensor in signature.outputs.items()}
  probabilities, parsed_labels = client.parse_predict_response(response)
  np.testing.assert_allclose(probabilities, outputs[features.PROBABILITIES_KEY])
  assert parsed_labels == labels

  rest_body = json.loads(json.dumps({'predictions': [
      {features.PROBABILITIES_KEY: row.tolist(), features.PREDICTED_LABEL_KEY: label}
      for row, label in zip(outputs[features.PROBABILITIES_KEY], labels, strict=True)]}))
  probabilities, parsed_labels = client.parse_rest_response(rest_body)
  np.testing.assert_allclose(probabilities, outputs[features.PROBABILITIES_KEY], rtol=1e-6)
  assert parsed_labels == labels


def test_a_response_without_the_outputs_is_a_clear_error():
  with pytest.raises(client.ServerError, match='lacks outputs'):
    client.parse_predict_response(predict_pb2.PredictResponse())
  with pytest.raises(client.ServerError, match='no predictions'):
    client.parse_rest_response({'error': 'Servable not found'})


# The client in process.

def test_client_in_process_matches_the_signature(in_process, serve_text):
  expected = serve_text(text=tf.constant(TEXTS))
  predictions = client.classify(TEXTS, in_process, batch_size=4)  # two requests
  assert [p.text for p in predictions] == TEXTS
  assert [p.label for p in predictions] == [
      label.decode() for label in expected[features.PREDICTED_LABEL_KEY].numpy()]
  np.testing.assert_allclose([p.probabilities for p in predictions],
                             expected[features.PROBABILITIES_KEY], rtol=1e-5)


def test_hostile_texts_get_predictions(in_process):
  texts = ['', LONG_TEXT, NOT_UTF8, 'a great movie', 'lone surrogate \udcff']
  predictions = client.classify(texts, in_process, batch_size=2)
  assert [p.text for p in predictions] == [
      '', LONG_TEXT, NOT_UTF8_DECODED, 'a great movie', 'lone surrogate \ufffd\ufffd\ufffd']
  assert all(p.label in CLASS_NAMES and len(p.probabilities) == 2 for p in predictions)
  # The long text is truncated to its first MAX_SEQ_LENGTH tokens, not rejected.
  [short] = client.classify(['great movie ' * MAX_SEQ_LENGTH], in_process)
  np.testing.assert_allclose(predictions[1].probabilities, short.probabilities, rtol=1e-5)
  # Undecodable bytes are classified as their decoding with replacement.
  [decoded] = client.classify([NOT_UTF8_DECODED], in_process)
  assert predictions[2].label == decoded.label
  np.testing.assert_allclose(predictions[2].probabilities, decoded.probabilities, rtol=1e-5)


def test_empty_text_gets_finite_probabilities(in_process):
  [prediction] = client.classify([''], in_process)
  assert np.isfinite(prediction.probabilities).all()


@pytest.mark.parametrize('texts, batch_size, message', [
    ([], 32, 'No texts to classify'),
    ('a great movie', 32, 'got a single text'),
    (['a great movie', 3], 32, r'texts\[1\] is int, expected str or bytes'),
    ([None], 32, r'texts\[0\] is NoneType'),
    (['a great movie'], 0, 'batch_size must be at least 1'),
])
def test_invalid_input_is_a_clear_error(in_process, texts, batch_size, message):
  with pytest.raises(client.InvalidInputError, match=message):
    client.classify(texts, in_process, batch_size)


def test_a_directory_without_a_model_is_a_clear_error(tmp_path):
  with pytest.raises(client.ClientError, match='Cannot load a SavedModel'):
    client.SavedModelBackend(str(tmp_path))


# The command line.

def run_cli(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'serving.client', *args], cwd=REPO_ROOT,
                        capture_output=True, timeout=300)


def test_cli_classifies_texts_and_files(tiny_model_dir, in_process, tmp_path):
  # Non-UTF-8 bytes reach the client as they are, both as arguments and as file lines.
  result = run_cli('--model-dir', tiny_model_dir, '--batch-size', '2',
                   '--text', 'a great movie', '--text', NOT_UTF8, '--text', '')
  assert result.returncode == 0, result.stderr.decode()
  lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
  expected = client.classify(['a great movie', NOT_UTF8, ''], in_process)
  assert [line['text'] for line in lines] == [p.text for p in expected]
  assert [line['label'] for line in lines] == [p.label for p in expected]

  texts_file = tmp_path / 'texts.txt'
  texts_file.write_bytes(b'\n'.join([b'a terrible , boring movie', NOT_UTF8,
                                     LONG_TEXT.encode()]) + b'\n')
  result = run_cli('--model-dir', tiny_model_dir, '--file', str(texts_file))
  assert result.returncode == 0, result.stderr.decode()
  lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
  expected = client.classify(['a terrible , boring movie', NOT_UTF8, LONG_TEXT], in_process)
  assert [(line['text'], line['label']) for line in lines] == [(p.text, p.label) for p in expected]
  np.testing.assert_allclose([line['probabilities'] for line in lines],
                             [p.probabilities for p in expected], rtol=1e-5)


@pytest.fixture
def closed_port() -> str:
  """A localhost address nothing listens on: connections are refused."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return f'127.0.0.1:{s.getsockname()[1]}'


@pytest.fixture
def silent_server() -> str:
  """A localhost address that accepts connections and never answers."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    s.listen()
    yield f'127.0.0.1:{s.getsockname()[1]}'


def test_cli_errors_exit_1_with_a_message(closed_port, tmp_path):
  empty_file = tmp_path / 'empty.txt'
  empty_file.write_bytes(b'')
  result = run_cli('--model-dir', '/nonexistent', '--file', str(empty_file))
  assert result.returncode == 1
  assert result.stderr.decode().splitlines()[-1] == 'error: No texts to classify.'

  result = run_cli('--server', closed_port, '--text', 'a great movie', '--timeout', '0.5',
                   '--retries', '1')
  assert result.returncode == 1
  assert result.stderr.decode().splitlines()[-1].startswith(
      f'error: http://{closed_port}/v1/models/sst2:predict did not answer')


# Servers: TF Serving's APIs over the in-process model, and servers that do not answer.

def tf_serving_outputs(serve_text, texts) -> dict:
  return {key: value.numpy() for key, value in serve_text(text=tf.constant(texts)).items()}


@contextlib.contextmanager
def rest_stand_in(serve_text, unavailable_answers: int):
  """TF Serving's REST predict API; answers 503 to the first `unavailable_answers` requests."""
  received = []

  class Handler(http.server.BaseHTTPRequestHandler):

    def do_POST(self):
      body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
      received.append((self.path, body))
      if len(received) <= unavailable_answers:
        status, answer = 503, {'error': 'Servable not available'}
      else:
        outputs = tf_serving_outputs(serve_text, [row['text'] for row in body['instances']])
        status, answer = 200, {'predictions': [
            {'probabilities': row.tolist(), 'label': label.decode()}
            for row, label in zip(outputs['probabilities'], outputs['label'], strict=True)]}
      data = json.dumps(answer).encode()
      self.send_response(status)
      self.send_header('Content-Type', 'application/json')
      self.send_header('Content-Length', str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    yield f'127.0.0.1:{server.server_port}', received
  finally:
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def grpc_stand_in(serve_text, unavailable_answers: int):
  """TF Serving's gRPC Predict; answers UNAVAILABLE to the first `unavailable_answers` calls."""
  received = []

  class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

    def Predict(self, request, context):
      received.append(request)
      if len(received) <= unavailable_answers:
        context.abort(grpc.StatusCode.UNAVAILABLE, 'Servable not available')
      outputs = tf_serving_outputs(serve_text, tf.make_ndarray(request.inputs['text']))
      response = predict_pb2.PredictResponse()
      for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
      return response

  server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
  port = server.add_insecure_port('127.0.0.1:0')
  server.start()
  try:
    yield f'127.0.0.1:{port}', received
  finally:
    server.stop(None)


def test_rest_client_retries_503_then_gets_predictions(serve_text, in_process):
  with rest_stand_in(serve_text, unavailable_answers=2) as (server, received):
    backend = client.RestBackend(server, timeout=5, retries=3, backoff=0.05)
    predictions = client.classify(TEXTS, backend, batch_size=4)
  assert len(received) == 2 + 2  # two 503s, then the two batches
  assert {path for path, _ in received} == {'/v1/models/sst2:predict'}
  assert [len(body['instances']) for _, body in received[2:]] == [4, 2]
  assert [p.label for p in predictions] == [p.label for p in client.classify(TEXTS, in_process)]


def test_grpc_client_retries_unavailable_then_gets_predictions(serve_text, in_process):
  with grpc_stand_in(serve_text, unavailable_answers=2) as (server, received):
    backend = client.GrpcBackend(server, timeout=5, retries=3, backoff=0.05)
    predictions = client.classify(TEXTS, backend, batch_size=4)
  assert len(received) == 2 + 2  # two UNAVAILABLEs, then the two batches
  assert {request.model_spec.name for request in received} == {'sst2'}
  assert [p.label for p in predictions] == [p.label for p in client.classify(TEXTS, in_process)]


@pytest.mark.parametrize('backend_class', [client.RestBackend, client.GrpcBackend])
@pytest.mark.parametrize('server_fixture', ['closed_port', 'silent_server'])
def test_a_server_that_does_not_answer_is_a_clear_error(backend_class, server_fixture, request):
  backend = backend_class(request.getfixturevalue(server_fixture), timeout=0.5, retries=2,
                          backoff=0.05)
  started = time.monotonic()
  with pytest.raises(client.ServerUnavailableError, match='did not answer'):
    client.classify(['a great movie'], backend)
  assert time.monotonic() - started < 10  # three attempts of 0.5 s at most, and short backoffs


def test_rest_timeout_is_the_deadline_of_the_whole_request(silent_server):
  # Four attempts of 1 s each would take 4 s and more: the deadline covers them all.
  backend = client.RestBackend(silent_server, timeout=1.0, retries=3, backoff=0.05)
  started = time.monotonic()
  with pytest.raises(client.ServerUnavailableError, match=r'did not answer within 1.0 s'):
    client.classify(['a great movie'], backend)
  assert time.monotonic() - started < 1.5
