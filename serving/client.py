"""Classifies raw texts with the exported model: in-process from a SavedModel directory, or
through TF Serving over REST or gRPC.

    python -m serving.client --text "a gripping film" [--text ...] | --file PATH
        (--model-dir DIR | --server HOST:PORT [--protocol rest|grpc] [--model-name NAME])
        [--signature serving_default] [--batch-size 32] [--timeout 10] [--retries 3]

Prints one JSON line per text, in input order: {"text", "label", "probabilities"} (probabilities
in the model's class-id order). A ClientError is printed to stderr and exits with status 1.

Input rules, the same on every path:
  * Texts are str or bytes. Invalid UTF-8 is decoded with replacement (each invalid sequence
    becomes U+FFFD, as do lone surrogates in a str) and the text is then classified. `--text`
    arguments and `--file` lines are taken as bytes, so the command line follows the same rule.
  * Empty and very long texts are sent as they are; the model truncates to its max_seq_length.
  * Texts go out in requests of at most `batch_size` (keep it <= the server's max_batch_size).
  * An empty list, a single str instead of a list, or an item that is neither str nor bytes is
    an InvalidInputError.

Server calls are retried with exponential backoff while the server is unavailable (connection
refused or timed out, HTTP 503, gRPC UNAVAILABLE); then ServerUnavailableError. `timeout` is the
deadline of each request, its retries and pauses included (a silent server costs `timeout`
seconds, not `timeout` per attempt); gRPC makes at most 5 attempts whatever `retries` says.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Iterable, List, Optional, Tuple, Union

import grpc
import numpy as np
import requests
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the TF Text ops the exported model uses)
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from models import features
from models.settings import DEFAULT_MODEL_NAME
from models.warmup import predict_request

DEFAULT_BATCH_SIZE = 32  # texts per request; at most the server's max_batch_size
OUTPUT_KEYS = (features.PROBABILITIES_KEY, features.PREDICTED_LABEL_KEY)

Text = Union[str, bytes]
# What every backend returns for a batch: probabilities [batch, classes] and labels [batch].
BatchOutputs = Tuple[np.ndarray, List[str]]


class ClientError(Exception):
  """An error with a message for the caller; the command line prints it and exits 1."""


class InvalidInputError(ClientError):
  """The texts cannot be sent."""


class ServerUnavailableError(ClientError):
  """The server did not answer, or stayed unavailable, through every retry."""


class ServerError(ClientError):
  """The server answered with an error, or with a response that lacks the model's outputs."""


@dataclasses.dataclass(frozen=True)
class Prediction:
  text: str
  label: str
  probabilities: List[float]


def prepare_texts(texts: Iterable[Text]) -> List[str]:
  """The texts as valid Unicode str, or InvalidInputError (rules in the module docstring)."""
  if isinstance(texts, (str, bytes)):
    raise InvalidInputError('Expected a list of texts, got a single text; wrap it in a list.')
  prepared = []
  for index, text in enumerate(texts):
    if isinstance(text, str):
      text = text.encode('utf-8', errors='surrogatepass')  # lone surrogates: invalid UTF-8
    if not isinstance(text, bytes):
      raise InvalidInputError(f'texts[{index}] is {type(text).__name__}, expected str or bytes.')
    prepared.append(text.decode('utf-8', errors='replace'))
  if not prepared:
    raise InvalidInputError('No texts to classify.')
  return prepared


def parse_predict_response(response: predict_pb2.PredictResponse) -> BatchOutputs:
  missing = set(OUTPUT_KEYS) - set(response.outputs)
  if missing:
    raise ServerError(f'The response lacks outputs {sorted(missing)}; '
                      f'it has {sorted(response.outputs)}.')
  labels = tf.make_ndarray(response.outputs[features.PREDICTED_LABEL_KEY])
  return (tf.make_ndarray(response.outputs[features.PROBABILITIES_KEY]),
          [label.decode('utf-8') for label in labels])


def rest_request_body(texts: List[str], signature: str = features.SERVING_SIGNATURE) -> dict:
  """The JSON body of TF Serving's REST predict API, in its row ("instances") format."""
  return {'signature_name': signature, 'instances': [{features.TEXT_KEY: t} for t in texts]}


def parse_rest_response(body: dict) -> BatchOutputs:
  """Outputs from a row-format answer: {"predictions": [{"probabilities": [...], "label": ...}]}."""
  rows = body.get('predictions')
  well_formed = isinstance(rows, list) and all(
      isinstance(row, dict) and set(OUTPUT_KEYS) <= set(row) for row in rows)
  if not well_formed:
    raise ServerError(f'The response has no predictions with outputs {list(OUTPUT_KEYS)}: '
                      f'{json.dumps(body)[:300]}')
  return (np.array([row[features.PROBABILITIES_KEY] for row in rows], dtype=np.float32),
          [row[features.PREDICTED_LABEL_KEY] for row in rows])


class SavedModelBackend:
  """Runs the signature in this process: what TF Serving runs, without the server."""

  def __init__(self, model_dir: str, signature: str = features.SERVING_SIGNATURE):
    try:
      self._model = tf.saved_model.load(model_dir)
    except OSError as error:
      raise ClientError(f'Cannot load a SavedModel from {model_dir}: {error}') from error
    if signature not in self._model.signatures:
      raise ClientError(f'{model_dir} has no signature {signature!r}; '
                        f'it has {sorted(self._model.signatures)}.')
    self._signature = self._model.signatures[signature]

  def predict(self, texts: List[str]) -> BatchOutputs:
    outputs = self._signature(**{features.TEXT_KEY: tf.constant(texts)})
    return (outputs[features.PROBABILITIES_KEY].numpy(),
            [label.decode('utf-8') for label in outputs[features.PREDICTED_LABEL_KEY].numpy()])


class RestBackend:
  """TF Serving's REST API: POST http://HOST:PORT/v1/models/<name>:predict."""

  def __init__(self, server: str, model_name: str = DEFAULT_MODEL_NAME,
               signature: str = features.SERVING_SIGNATURE, timeout: float = 10.0,
               retries: int = 3, backoff: float = 0.5):
    self._url = f'http://{server}/v1/models/{model_name}:predict'
    self._signature = signature
    self._timeout = timeout
    self._attempts = retries + 1
    self._backoff = backoff
    self._session = requests.Session()

  def _post_within_deadline(self, body: dict) -> requests.Response:
    """The first answer other than 503 (what TF Serving answers while the model loads or its
    batch queue is full), retrying with exponential backoff; every attempt and pause fits in
    `timeout` seconds in all. Predict has no side effects, so POSTs may be retried.

    Written here rather than with urllib3's Retry, whose timeout applies to each attempt.
    """
    deadline = time.monotonic() + self._timeout
    for attempt in range(self._attempts):
      try:
        response = self._session.post(self._url, json=body,
                                      timeout=max(deadline - time.monotonic(), 0.001))
        if response.status_code != 503:
          return response
        failure = f'HTTP 503: {response.text[:300]}'
      except (requests.ConnectionError, requests.Timeout) as error:
        failure = str(error)
      pause = self._backoff * 2 ** attempt
      if attempt + 1 == self._attempts or time.monotonic() + pause >= deadline:
        break
      time.sleep(pause)
    raise ServerUnavailableError(f'{self._url} did not answer within {self._timeout} s '
                                 f'({attempt + 1} attempt(s)): {failure}')

  def predict(self, texts: List[str]) -> BatchOutputs:
    response = self._post_within_deadline(rest_request_body(texts, self._signature))
    if response.status_code != 200:
      raise ServerError(f'{self._url} answered HTTP {response.status_code}: {response.text[:300]}')
    try:
      body = response.json()
    except ValueError as error:
      raise ServerError(f'{self._url} answered with invalid JSON: {response.text[:300]}') from error
    return parse_rest_response(body)


class GrpcBackend:
  """TF Serving's gRPC PredictionService.Predict at HOST:PORT."""

  def __init__(self, server: str, model_name: str = DEFAULT_MODEL_NAME,
               signature: str = features.SERVING_SIGNATURE, timeout: float = 10.0,
               retries: int = 3, backoff: float = 0.5):
    self._server = server
    self._model_name = model_name
    self._signature = signature
    self._timeout = timeout
    options = []
    if retries:  # gRPC's own retries; a policy needs at least 2 attempts.
      options.append(('grpc.service_config', json.dumps({'methodConfig': [{
          'name': [{'service': 'tensorflow.serving.PredictionService'}],
          'retryPolicy': {
              'maxAttempts': retries + 1,
              'initialBackoff': f'{backoff}s',
              'maxBackoff': f'{backoff * 2 ** retries}s',
              'backoffMultiplier': 2,
              'retryableStatusCodes': ['UNAVAILABLE'],
          }}]})))
    self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server, options=options))

  def predict(self, texts: List[str]) -> BatchOutputs:
    try:
      response = self._stub.Predict(predict_request(texts, self._model_name, self._signature),
                                    timeout=self._timeout)
    except grpc.RpcError as error:
      status = f'{error.code().name}: {error.details()}'
      if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        raise ServerUnavailableError(
            f'{self._server} did not answer within {self._timeout} s: {status}') from error
      raise ServerError(f'{self._server} answered {status}') from error
    return parse_predict_response(response)


def classify(texts: Iterable[Text], backend,
             batch_size: int = DEFAULT_BATCH_SIZE) -> List[Prediction]:
  """Predictions for `texts`, in order, sent to `backend` in requests of at most `batch_size`.

  `backend`: a SavedModelBackend, RestBackend or GrpcBackend (`predict(texts) -> BatchOutputs`).
  """
  if batch_size < 1:
    raise InvalidInputError(f'batch_size must be at least 1, got {batch_size}.')
  prepared = prepare_texts(texts)
  predictions = []
  for start in range(0, len(prepared), batch_size):
    batch = prepared[start:start + batch_size]
    probabilities, labels = backend.predict(batch)
    predictions.extend(Prediction(text, label, row.tolist())
                       for text, label, row in zip(batch, labels, probabilities, strict=True))
  return predictions


def _read_lines(path: str) -> List[bytes]:
  try:
    with open(path, 'rb') as f:
      return f.read().splitlines()
  except OSError as error:
    raise ClientError(f'Cannot read {path}: {error}') from error


def _backend(args: argparse.Namespace):
  if args.model_dir:
    return SavedModelBackend(args.model_dir, args.signature)
  backend_class = RestBackend if args.protocol == 'rest' else GrpcBackend
  return backend_class(args.server, args.model_name, args.signature, args.timeout, args.retries)


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--text', action='append', help='a text to classify; repeatable')
  source.add_argument('--file', help='a file with one text per line')
  target = parser.add_mutually_exclusive_group(required=True)
  target.add_argument('--model-dir', help='run a SavedModel in this process')
  target.add_argument('--server', help='TF Serving at HOST:PORT (REST 8501, gRPC 8500)')
  parser.add_argument('--protocol', choices=('rest', 'grpc'), default='rest')
  parser.add_argument('--model-name', default=DEFAULT_MODEL_NAME)
  parser.add_argument('--signature', default=features.SERVING_SIGNATURE)
  parser.add_argument('--batch-size', type=int, default=DEFAULT_BATCH_SIZE,
                      help='texts per request')
  parser.add_argument('--timeout', type=float, default=10.0,
                      help='seconds per request, retries included')
  parser.add_argument('--retries', type=int, default=3, help='while the server is unavailable')
  args = parser.parse_args(argv)
  try:
    # os.fsencode gives back the exact bytes of an argument, even when they are not UTF-8.
    texts = prepare_texts([os.fsencode(text) for text in args.text] if args.text
                          else _read_lines(args.file))  # before loading a model or calling out
    predictions = classify(texts, _backend(args), args.batch_size)
  except ClientError as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  for prediction in predictions:
    print(json.dumps(dataclasses.asdict(prediction)))
  return 0


if __name__ == '__main__':
  sys.exit(main())
