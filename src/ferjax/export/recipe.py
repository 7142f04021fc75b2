"""The whole way from image pixels to calibrated probabilities, as data.

An exported model maps preprocessed crops to logits; what happens before
(finding the face's crop, its colours, the resize and normalisation) and
after (the temperature, the label order) is recorded here as one JSON
object, so that a consumer without ferjax (``examples/onnx_predict.py``)
reproduces ``ferjax predict``'s scores. Every number is a JSON number and
every rule names the OpenCV or JAX call that ferjax makes, with its
arguments; nothing refers to this machine.

``recipe(loaded)`` is written into an ONNX file's ``metadata_props`` under
``KEY`` (as a JSON string: ONNX metadata values are strings) and into a
StableHLO export's sidecar JSON as an object. ``FORMAT`` is bumped when a
field changes meaning.
"""

import os
import pathlib
from typing import Any

import ferjax
from ferjax import pretrained
from ferjax.recognition import align
from ferjax.run.model import LoadedModel

KEY = "ferjax.recipe"
FORMAT = 1


def run_name(workdir: str | os.PathLike | None) -> str:
  """Where the model came from, without this machine's paths: the bundled
  model's name, or the run directory's own name."""
  if workdir is None:
    return f"pretrained:{pretrained.DEFAULT}"
  resolved = pathlib.Path(workdir).resolve()
  for name, bundled in pretrained.MODELS.items():
    if bundled.path.resolve() == resolved:
      return f"pretrained:{name}"
  return resolved.name


def _channel_rule(crop_channels: int, model_channels: int) -> str:
  """``data.preprocess.to_model_input``'s rule for these channel counts."""
  if crop_channels == model_channels:
    return "keep"
  return "tile" if crop_channels == 1 else "mean"


def recipe(loaded: LoadedModel, *, preprocess_in_graph: bool = False
           ) -> dict[str, Any]:
  """The steps from a uint8 RGB image and a face's box and eyes to the
  model's input, and from its output to calibrated probabilities.

  With ``preprocess_in_graph`` the model takes the uint8 crop and returns
  the probabilities: "model_input" and "output" then describe what the
  graph does inside, for the record.
  """
  config, dataset = loaded.config, loaded.dataset
  crop_h, crop_w, crop_c = (int(v) for v in dataset["image_shape"])
  height, width = (int(v) for v in config.input.image_size)
  channels = int(config.input.channels)
  return {
      "format": FORMAT,
      "ferjax_version": ferjax.__version__,
      "image": {
          "dtype": "uint8",
          "channels": "RGB",
          "decode": "cv2.imdecode(bytes, cv2.IMREAD_COLOR) (EXIF orientation "
                    "applied), then cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB); "
                    "grey and RGBA images become RGB (alpha dropped)",
      },
      "face": {
          "box": "[x, y, width, height] in image pixels (ferjax predict's "
                 "'precise' box)",
          "eyes": "left_eye and right_eye [x, y] in image pixels, left the "
                  "one with the smaller x",
      },
      "crop": {
          "margin": align.MARGIN,
          "side": "max(width, height) * (1 + 2 * margin)",
          "center": "(x + width / 2, y + height / 2)",
          "region": "[side * max(1, crop_w / crop_h), side * max(1, crop_h "
                    "/ crop_w)] (width, height), centred on center",
          "angle_degrees": "degrees(atan2(right_eye.y - left_eye.y, "
                           "right_eye.x - left_eye.x)); 0 without eyes or "
                           "when abs(angle) > max_angle_degrees",
          "max_angle_degrees": align.MAX_ROTATION_DEGREES,
          "patch_size": "[max(1, round(region width)), max(1, round(region "
                        "height))] (Python round: halves to even)",
          "warp": "M = cv2.getRotationMatrix2D(center, angle_degrees, 1.0); "
                  "M[:, 2] += (patch_w / 2 - center.x, patch_h / 2 - "
                  "center.y); cv2.warpAffine(image_rgb, M, (patch_w, "
                  "patch_h), flags=cv2.INTER_LINEAR, "
                  "borderMode=cv2.BORDER_REPLICATE)",
          "resize": "cv2.resize(patch, (crop_w, crop_h), "
                    "interpolation=cv2.INTER_AREA)",
          "shape": [crop_h, crop_w, crop_c],
          "colour": ("grey: cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY) on "
                     "the uint8 crop after the resize (0.299 R + 0.587 G + "
                     "0.114 B, rounded), one channel"
                     if crop_c == 1 else "RGB, as cropped"),
      },
      "model_input": {
          "scale": "crop / 255 as float32",
          "resize": {
              "to": [height, width],
              "skipped_when_equal": True,
              "method": "jax.image.resize(x, (n, h, w, c), 'bilinear'): "
                        "separable; along each axis output i samples input "
                        "position s = (i + 0.5) * in / out - 0.5 with the "
                        "triangle kernel max(0, 1 - |s - j| / k), k = "
                        "max(1, in / out) (antialiased when shrinking), the "
                        "weights of each output divided by their sum",
          },
          "channels": {"from": crop_c, "to": channels,
                       "rule": _channel_rule(crop_c, channels),
                       "rules": {"keep": "as is",
                                 "tile": "grey repeated to 3 channels",
                                 "mean": "the mean of the 3 channels"}},
          "mean": [float(v) for v in config.input.mean],
          "std": [float(v) for v in config.input.std],
          "normalise": "(x - mean) / std per channel (one value: every "
                       "channel), after the channels rule",
          "layout": "NHWC",
          "dtype": "float32",
          "shape": ["batch", height, width, channels],
      },
      "output": {
          "labels": [str(c) for c in dataset["class_names"]],
          "temperature": loaded.temperature,
          "probabilities": "softmax(logits / temperature) over the labels; "
                           "temperature null: softmax(logits), uncalibrated",
      },
      "graph": {
          "input": ("uint8 crops (batch, crop_h, crop_w, crop_c)"
                    if preprocess_in_graph else
                    "model_input (float32, NHWC)"),
          "output": ("probs: the probabilities" if preprocess_in_graph
                     else "logits"),
      },
  }
