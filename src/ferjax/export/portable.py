"""A run's model as one self-describing file: ONNX, or StableHLO.

The file maps a batch of preprocessed images, float32 NHWC of the run's
``config.input.image_size`` and channels, to the logits; the batch is any
size. How to get from an image to that input (scale to [0, 1], resize,
channels, mean and std), the label order and where the model came from are
in the file's metadata (ONNX ``metadata_props``; for StableHLO a JSON file
beside it), so a consumer needs nothing from ferjax.
"""

import hashlib
import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp

import ferjax
from ferjax.export import jaxpr_onnx
from ferjax.run import files
from ferjax.run.model import LoadedModel, load_model

LAYOUT = "NHWC"


def _digest(config: Any) -> str:
  text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def metadata(loaded: LoadedModel, workdir: str | os.PathLike | None
             ) -> dict[str, str]:
  """What a consumer needs to feed the model and read its output."""
  config, dataset = loaded.config, loaded.dataset
  height, width = config.input.image_size
  return {
      "ferjax.version": ferjax.__version__,
      "ferjax.model": config.model.name,
      "ferjax.run": str(workdir) if workdir is not None else "pretrained",
      "ferjax.checkpoint_step": str(loaded.step),
      # False: the step had no recorded checksums (export warns).
      "ferjax.checkpoint_verified": json.dumps(loaded.verified),
      "ferjax.config_sha256": _digest(config),
      "dataset": str(config.input.dataset),
      "dataset.image_shape": json.dumps(list(dataset["image_shape"])),
      "class_names": json.dumps(list(dataset["class_names"])),
      "input.layout": LAYOUT,
      "input.shape": json.dumps(["batch", height, width,
                                 config.input.channels]),
      "input.dtype": "float32",
      "input.mean": json.dumps(list(config.input.mean)),
      "input.std": json.dumps(list(config.input.std)),
      "preprocessing": (
          f"uint8 pixels / 255; resize to {height}x{width} (bilinear, "
          "antialiased when shrinking: jax.image.resize); "
          "grey tiled to 3 channels or colour averaged to 1 as "
          f"input.shape says ({config.input.channels}); then "
          "(x - input.mean) / input.std per channel"),
      "output": "logits (batch, len(class_names)); softmax gives the "
                "class probabilities",
  }


def _logits_fn(loaded: LoadedModel):
  model, variables = loaded.model, loaded.variables
  return lambda x: model.apply(variables, x, train=False)


def _input_shape(loaded: LoadedModel) -> tuple[int, int, int]:
  config = loaded.config
  return (*config.input.image_size, config.input.channels)


def write_onnx(workdir: str | os.PathLike | None, out: str | os.PathLike, *,
               checkpoint: str = "best") -> pathlib.Path:
  """Writes the run's model as ONNX to ``out`` (atomically, never over a
  file); raises ``jaxpr_onnx.NotLowerable`` naming what does not lower."""
  out = files.check_new(out, "--out", "export")
  loaded = load_model(workdir, checkpoint)
  try:
    model = jaxpr_onnx.to_onnx(
        _logits_fn(loaded), _input_shape(loaded), output_names=("logits",),
        metadata=metadata(loaded, workdir),
        graph_name=loaded.config.model.name)
  except jaxpr_onnx.NotLowerable as e:
    raise jaxpr_onnx.NotLowerable(
        f"model {loaded.config.model.name!r} does not lower to ONNX: {e}; "
        "--format stablehlo (jax.export) needs no ONNX lowering") from e
  files.write_new(out, model.SerializeToString())
  return out


def stablehlo_metadata_path(out: str | os.PathLike) -> pathlib.Path:
  """Where the metadata of a StableHLO export at ``out`` is."""
  return pathlib.Path(f"{out}.json")


def write_stablehlo(workdir: str | os.PathLike | None,
                    out: str | os.PathLike, *,
                    checkpoint: str = "best") -> pathlib.Path:
  """Writes the run's model as serialized ``jax.export`` StableHLO to
  ``out``, its metadata to ``out.json``, both or neither;
  ``jax.export.deserialize`` reads it back without ferjax. The batch
  dimension is symbolic."""
  out = files.check_new(out, "--out", "export")
  files.check_new(stablehlo_metadata_path(out), "--out", "export")
  loaded = load_model(workdir, checkpoint)
  (batch,) = jax.export.symbolic_shape("batch")
  exported = jax.export.export(jax.jit(_logits_fn(loaded)))(
      jax.ShapeDtypeStruct((batch, *_input_shape(loaded)), jnp.float32))
  files.write_new_files({
      stablehlo_metadata_path(out): (json.dumps(
          metadata(loaded, workdir), indent=1) + "\n").encode(),
      out: bytes(exported.serialize())})
  return out

