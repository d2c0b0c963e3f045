"""GLUE's SST-2, the default dataset's files (pipeline/datasets/sst2.yaml), fetched onto a machine
that has no copy of them:

    python -m pipeline.sst2_data    # downloads, checks and unpacks the archive; prints the folder

The archive is checked against its SHA-256 before anything is unpacked, then its train.tsv and
dev.tsv (GLUE's dev set is our validation file) land in <TEXT_CLASSIFIER_CACHE_DIR>/sst2, by
default ~/.cache/text-classifier/sst2. TEXT_CLASSIFIER_SST2_URL names another copy of the same
archive (a mirror; tests use a file:// URL). The local runner falls back to this folder, and to
the download, when the default dataset's data_root has no files (pipeline/config.py).
"""

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

URL = 'https://dl.fbaipublicfiles.com/glue/data/SST-2.zip'
SHA256 = 'd67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa'
URL_ENV = 'TEXT_CLASSIFIER_SST2_URL'
CACHE_DIR_ENV = 'TEXT_CLASSIFIER_CACHE_DIR'
# Archive member -> the file name sst2.yaml reads.
FILES = {'SST-2/train.tsv': 'train.tsv', 'SST-2/dev.tsv': 'validation.tsv'}
# Seconds a connection or read may stall: offline, the runner fails fast instead of hanging.
TIMEOUT_SECONDS = 20


class FetchError(Exception):
  """The archive could not be downloaded, or is not the one expected."""


def archive_url() -> str:
  return os.environ.get(URL_ENV) or URL


def cache_dir() -> str:
  """Where the fetched files live: <TEXT_CLASSIFIER_CACHE_DIR or ~/.cache/text-classifier>/sst2."""
  root = os.environ.get(CACHE_DIR_ENV) or os.path.join(os.path.expanduser('~'), '.cache',
                                                       'text-classifier')
  return os.path.join(os.path.abspath(root), 'sst2')


def is_complete(folder: str) -> bool:
  return all(os.path.isfile(os.path.join(folder, name)) for name in FILES.values())


def _how_to_provide(folder: str) -> str:
  return (f'Where the internet is reachable, run `python -m pipeline.sst2_data` (and copy '
          f'{folder} here), or put GLUE SST-2\'s train.tsv and dev.tsv (renamed validation.tsv) '
          f'in {folder}')


def _download(url: str, path: str, timeout: float) -> str:
  """Writes `url` to `path`; returns its SHA-256."""
  digest = hashlib.sha256()
  with urllib.request.urlopen(url, timeout=timeout) as response, open(path, 'wb') as f:
    while chunk := response.read(1 << 20):
      digest.update(chunk)
      f.write(chunk)
  return digest.hexdigest()


def fetch(folder: str, url: str, sha256: str, timeout: float = TIMEOUT_SECONDS) -> str:
  """Downloads the archive at `url`, checks its SHA-256 and unpacks FILES into `folder`; returns
  `folder`. The files are unpacked beside it and renamed into place at once, so an interrupted
  fetch never leaves a half-written folder that looks complete."""
  parent = os.path.dirname(os.path.abspath(folder))
  os.makedirs(parent, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=parent, prefix='.sst2-') as temporary:
    archive = os.path.join(temporary, 'SST-2.zip')
    try:
      actual = _download(url, archive, timeout)
    except (OSError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
      reason = (error.reason if isinstance(error, urllib.error.URLError)
                and not isinstance(error, urllib.error.HTTPError) else error)
      raise FetchError(f'Cannot download SST-2 from {url} ({reason}). '
                       f'{_how_to_provide(folder)}.') from None
    if actual != sha256:
      raise FetchError(f'{url} is not GLUE\'s SST-2 archive: its SHA-256 is {actual}, expected '
                       f'{sha256}; nothing was unpacked.')
    unpacked = os.path.join(temporary, 'sst2')
    os.mkdir(unpacked)
    with zipfile.ZipFile(archive) as zipped:
      for member, name in FILES.items():
        with zipped.open(member) as source, open(os.path.join(unpacked, name), 'wb') as target:
          shutil.copyfileobj(source, target)
    try:
      os.rename(unpacked, folder)  # replaces an empty folder too
    except OSError as error:
      if not is_complete(folder):  # else a fetch running beside this one got there first
        raise FetchError(f'Cannot put SST-2 in {folder}: {error.strerror}; empty or remove '
                         'it and fetch again.') from None
  return folder


def main(argv=None) -> None:
  argparse.ArgumentParser(
      prog='python -m pipeline.sst2_data',
      description=f'Downloads GLUE\'s SST-2 ({URL_ENV} or {URL}), checks its SHA-256 and puts '
                  'train.tsv and validation.tsv (its dev set) in '
                  f'<{CACHE_DIR_ENV} or ~/.cache/text-classifier>/sst2, where the local runner '
                  'looks when the default dataset\'s data_root has no files.').parse_args(argv)
  folder = cache_dir()
  if not is_complete(folder):
    try:
      fetch(folder, archive_url(), SHA256)
    except FetchError as error:
      print(f'error: {error}', file=sys.stderr)
      raise SystemExit(1) from None
  print(folder)


if __name__ == '__main__':
  main()
