"""Session-wide setup: 4 simulated CPU devices; synthetic_fer and a run, once.

The device count must be in ``XLA_FLAGS`` before anything imports JAX, so it
is set here, at the very top, before any import that could pull JAX in.
Tests never read the user's ``~/tensorflow_datasets``: every builder gets an
explicit ``data_dir``.
"""

import os

_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_flags = os.environ.get("XLA_FLAGS", "")
if _DEVICE_FLAG not in _flags:
  os.environ["XLA_FLAGS"] = f"{_flags} {_DEVICE_FLAG}=4".strip()

import pytest  # noqa: E402  (after XLA_FLAGS on purpose)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding a complete ``synthetic_fer`` build (array_record).

  Built once per session (about 10-20 s on one CPU core); use it with
  ``SyntheticFer(data_dir=synthetic_data_dir, file_format="array_record")``
  or any loader that takes a ``data_dir``.
  """
  from ferjax.data.synthetic_fer import SyntheticFer  # pylint: disable=g-import-not-at-top

  data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
  builder = SyntheticFer(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return str(data_dir)


@pytest.fixture(scope="session")
def reference_run(synthetic_data_dir: str,
                  tmp_path_factory: pytest.TempPathFactory):
  """The uninterrupted tiny quickstart run (shard_map over all 4 devices).

  Shared read-only by the training-core and multi-process tests, which
  compare other runs with it; trained once per session.
  """
  from ferjax.train import loop  # pylint: disable=g-import-not-at-top
  from test_train import tiny_config  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("reference")
  results = loop.train_and_evaluate(tiny_config(synthetic_data_dir), workdir)
  return workdir, results
