"""Training in bfloat16 (``model.dtype``): what a GPU run uses by default.

On every backend: the losses stay finite and follow the float32 run of the
same config, and the model learns as well. Part of ``gpu_check.sh``'s GPU
test selection, and cheap enough for the default CPU run.
"""

import numpy as np

from ferjax.run.run_dir import read_metrics
from ferjax.train import loop

from helpers import tiny_config


def test_bfloat16_training_is_finite_and_follows_float32(
    reference_run, synthetic_data_dir, tmp_path):
  workdir, results = reference_run
  low = loop.train_and_evaluate(
      tiny_config(synthetic_data_dir, **{"model.dtype": "bfloat16"}), tmp_path)
  losses = {name: np.array([e["loss"] for e in read_metrics(d)
                            if e["split"] == "train"])
            for name, d in (("float32", workdir), ("bfloat16", tmp_path))}
  assert np.all(np.isfinite(losses["bfloat16"]))
  assert not np.array_equal(losses["bfloat16"], losses["float32"])
  assert losses["bfloat16"].shape == losses["float32"].shape
  # bfloat16 keeps 8 bits of mantissa: the first window's mean loss agrees
  # to about 1%, and rounding differences grow with training.
  np.testing.assert_allclose(losses["bfloat16"][0], losses["float32"][0],
                             rtol=0.02)
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.25)
  assert abs(low["test"]["accuracy"] - results["test"]["accuracy"]) < 0.1
