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
  from helpers import tiny_config  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("reference")
  results = loop.train_and_evaluate(tiny_config(synthetic_data_dir), workdir)
  return workdir, results


@pytest.fixture(scope="session")
def classifier():
  """An untrained LeNet-5 classifier of FER2013's labels: for tests of the
  recognition plumbing, not of its predictions."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ferjax.labels import FER2013_CLASSES  # pylint: disable=g-import-not-at-top
  from ferjax.models import create_model  # pylint: disable=g-import-not-at-top
  from ferjax.recognition.classifier import classifier_from_model  # pylint: disable=g-import-not-at-top

  model = create_model("lenet5", num_classes=7)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  return classifier_from_model(
      model, variables, class_names=FER2013_CLASSES, crop_shape=(48, 48, 1),
      image_size=(32, 32), channels=3, mean=[0.5], std=[0.25])
