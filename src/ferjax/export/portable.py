"""A run's model as one self-describing file: ONNX, or StableHLO.

The file maps a batch of preprocessed images, float32 NHWC of the run's
``config.input.image_size`` and channels, to the logits; the batch is any
size. With ``preprocess_in_graph`` it maps uint8 face crops (the dataset's
stored shape) to calibrated probabilities instead. The whole way from an
image and a face's box to the probabilities (crop, colour, resize,
normalisation, labels, temperature) is in the file's metadata as one JSON
object (``export.recipe``; ONNX ``metadata_props["ferjax.recipe"]``, for
StableHLO the JSON file beside it), so a consumer needs nothing from ferjax:
``examples/onnx_predict.py`` reproduces ``ferjax predict``'s scores.
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
from ferjax.export import recipe as recipe_lib
from ferjax.recognition.classifier import classifier_of
from ferjax.run import files
from ferjax.run.model import LoadedModel, load_model

LAYOUT = "NHWC"


def _digest(config: Any) -> str:
  text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def provenance(loaded: LoadedModel, workdir: str | os.PathLike | None
               ) -> dict[str, Any]:
  """Where the model came from: no path of this machine."""
  return {
      "version": ferjax.__version__,
      "model": loaded.config.model.name,
      "run": recipe_lib.run_name(workdir),
      "checkpoint_step": int(loaded.step),
      # False: the step had no recorded checksums (export warns).
      "checkpoint_verified": bool(loaded.verified),
      "config_sha256": _digest(loaded.config),
      "dataset": str(loaded.config.input.dataset),
  }


def metadata(loaded: LoadedModel, workdir: str | os.PathLike | None, *,
             preprocess_in_graph: bool = False) -> dict[str, str]:
  """ONNX ``metadata_props``: the recipe as one JSON object under
  ``recipe.KEY``, and flat one-line keys for a quick look."""
  config, dataset = loaded.config, loaded.dataset
  height, width = config.input.image_size
  recipe = recipe_lib.recipe(loaded, preprocess_in_graph=preprocess_in_graph)
  rule = recipe["model_input"]["channels"]["rule"]
  crop = "x".join(map(str, dataset["image_shape"]))
  flat = {f"ferjax.{k}": str(v)
          for k, v in provenance(loaded, workdir).items() if k != "dataset"}
  if preprocess_in_graph:
    io = {"input.shape": json.dumps(["batch", *dataset["image_shape"]]),
          "input.dtype": "uint8",
          "preprocessing": f"in the graph: uint8 face crops ({crop}, cut as "
                           f"{recipe_lib.KEY} 'crop' says) in",
          "output": "probs (batch, len(class_names)): softmax(logits / "
                    "temperature), calibrated when the recipe's "
                    "temperature is not null"}
  else:
    io = {"input.shape": json.dumps(["batch", height, width,
                                     config.input.channels]),
          "input.dtype": "float32",
          "preprocessing": (
              f"see {recipe_lib.KEY}: the face crop ({crop} uint8) / 255; "
              f"resize to {height}x{width} (jax.image.resize bilinear, "
              f"antialiased when shrinking); channels "
              f"{dataset['image_shape'][-1]} -> {config.input.channels} "
              f"({rule}); then (x - input.mean) / input.std"),
          "output": "logits (batch, len(class_names)); softmax(logits / "
                    f"temperature) ({recipe_lib.KEY} output.temperature; "
                    "null: 1) gives the class probabilities"}
  return {
      **flat,
      "ferjax.checkpoint_verified": json.dumps(loaded.verified),
      recipe_lib.KEY: json.dumps(recipe),
      "dataset": str(config.input.dataset),
      "dataset.image_shape": json.dumps(list(dataset["image_shape"])),
      "class_names": json.dumps(list(dataset["class_names"])),
      "temperature": json.dumps(loaded.temperature),
      "input.layout": LAYOUT,
      "input.mean": json.dumps(list(config.input.mean)),
      "input.std": json.dumps(list(config.input.std)),
      **io,
  }


def _logits_fn(loaded: LoadedModel):
  model, variables = loaded.model, loaded.variables
  return lambda x: model.apply(variables, x, train=False)


def _probs_fn(loaded: LoadedModel):
  """uint8 crops -> calibrated probabilities: ``Classifier.predict``'s
  program."""
  return classifier_of(loaded).predict_fn


def _input_shape(loaded: LoadedModel, preprocess_in_graph: bool
                 ) -> tuple[int, int, int]:
  if preprocess_in_graph:
    return tuple(int(v) for v in loaded.dataset["image_shape"])
  config = loaded.config
  return (*config.input.image_size, config.input.channels)


def _model_fn(loaded: LoadedModel, preprocess_in_graph: bool):
  """The function exported, its input dtype and its output's name."""
  if preprocess_in_graph:
    return _probs_fn(loaded), jnp.uint8, "probs"
  return _logits_fn(loaded), jnp.float32, "logits"


def write_onnx(workdir: str | os.PathLike | None, out: str | os.PathLike, *,
               checkpoint: str = "best",
               preprocess_in_graph: bool = False) -> pathlib.Path:
  """Writes the run's model as ONNX to ``out`` (atomically, never over a
  file); raises ``jaxpr_onnx.NotLowerable`` naming what does not lower.
  With ``preprocess_in_graph``: uint8 crops in, probabilities out."""
  out = files.check_new(out, "--out", "export")
  loaded = load_model(workdir, checkpoint)
  fn, dtype, output = _model_fn(loaded, preprocess_in_graph)
  try:
    model = jaxpr_onnx.to_onnx(
        fn, _input_shape(loaded, preprocess_in_graph), input_dtypes=[dtype],
        output_names=(output,),
        metadata=metadata(loaded, workdir,
                          preprocess_in_graph=preprocess_in_graph),
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


def stablehlo_metadata(loaded: LoadedModel,
                       workdir: str | os.PathLike | None, *,
                       preprocess_in_graph: bool = False) -> dict[str, Any]:
  """The sidecar of a StableHLO export: JSON types, not strings."""
  return {"provenance": provenance(loaded, workdir),
          "recipe": recipe_lib.recipe(
              loaded, preprocess_in_graph=preprocess_in_graph)}


def write_stablehlo(workdir: str | os.PathLike | None,
                    out: str | os.PathLike, *,
                    checkpoint: str = "best",
                    preprocess_in_graph: bool = False) -> pathlib.Path:
  """Writes the run's model as serialized ``jax.export`` StableHLO to
  ``out``, its metadata to ``out.json``, both or neither;
  ``jax.export.deserialize`` reads it back without ferjax. The batch
  dimension is symbolic."""
  out = files.check_new(out, "--out", "export")
  files.check_new(stablehlo_metadata_path(out), "--out", "export")
  loaded = load_model(workdir, checkpoint)
  fn, dtype, _ = _model_fn(loaded, preprocess_in_graph)
  (batch,) = jax.export.symbolic_shape("batch")
  exported = jax.export.export(jax.jit(fn))(jax.ShapeDtypeStruct(
      (batch, *_input_shape(loaded, preprocess_in_graph)), dtype))
  files.write_new_files({
      stablehlo_metadata_path(out): (json.dumps(
          stablehlo_metadata(loaded, workdir,
                             preprocess_in_graph=preprocess_in_graph),
          indent=1) + "\n").encode(),
      out: bytes(exported.serialize())})
  return out
