"""A ferjax ONNX export used without ferjax: numpy, OpenCV and ONNX Runtime.

  ferjax export --format onnx --pretrained --out model.onnx
  ferjax predict photos/ > predictions.jsonl
  python examples/onnx_predict.py model.onnx --predictions predictions.jsonl
  python examples/onnx_predict.py model.onnx --image photo.jpg \\
      --box X Y W H [--eyes LEFT_X LEFT_Y RIGHT_X RIGHT_Y]

Everything between an image and the calibrated class probabilities is read
from the model's ``ferjax.recipe`` metadata (a JSON object): the face crop
(a square region around the box plus a margin, rotated level by the eyes,
shrunk with INTER_AREA to the dataset's image shape), its colour rule, the
resize, channels and normalisation of the model's input, the label order and
the temperature. Faces come from elsewhere: here, the boxes and eyes of
``ferjax predict``'s JSON lines (their "precise" values, so that the crops
are ferjax's own) or from the command line.

Prints one JSON line per image: {"path", "faces": [{"box", "label",
"scores"}]}; with --predictions each face also has "max_abs_diff", the
largest difference from ferjax predict's scores (which are rounded to 4
decimals). A model exported with --preprocess-in-graph (uint8 crops in,
probabilities out) is fed the crops as they are.
"""

import argparse
import json
import math
import sys

import cv2
import numpy as np
import onnxruntime as ort

RECIPE_KEY = "ferjax.recipe"
SUPPORTED_FORMAT = 1


def read_recipe(session: ort.InferenceSession) -> dict:
  meta = session.get_modelmeta().custom_metadata_map
  if RECIPE_KEY not in meta:
    sys.exit(f"the model has no {RECIPE_KEY} metadata: export it with a "
             "ferjax that writes it")
  recipe = json.loads(meta[RECIPE_KEY])
  if recipe["format"] != SUPPORTED_FORMAT:
    sys.exit(f"{RECIPE_KEY} format {recipe['format']}; this script reads "
             f"format {SUPPORTED_FORMAT}")
  return recipe


def load_rgb(path: str) -> np.ndarray:
  """uint8 RGB (H, W, 3), decoded as the recipe's "image" says."""
  bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    sys.exit(f"{path}: not an image OpenCV can decode")
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def eye_angle(eyes: tuple | None, max_degrees: float) -> float:
  if eyes is None:
    return 0.0
  (lx, ly), (rx, ry) = eyes
  angle = math.degrees(math.atan2(ry - ly, rx - lx))
  return angle if abs(angle) <= max_degrees else 0.0


def crop_face(image: np.ndarray, box: list[float], eyes: tuple | None,
              crop: dict) -> np.ndarray:
  """The uint8 crop (H, W, C) of the recipe's "crop" section."""
  x, y, w, h = box
  crop_h, crop_w, channels = crop["shape"]
  side = max(w, h) * (1.0 + 2.0 * crop["margin"])
  cx, cy = x + w / 2.0, y + h / 2.0
  patch_w = max(1, round(side * max(1.0, crop_w / crop_h)))
  patch_h = max(1, round(side * max(1.0, crop_h / crop_w)))
  matrix = cv2.getRotationMatrix2D(
      (cx, cy), eye_angle(eyes, crop["max_angle_degrees"]), 1.0)
  matrix[:, 2] += (patch_w / 2.0 - cx, patch_h / 2.0 - cy)
  patch = cv2.warpAffine(image, matrix, (patch_w, patch_h),
                         flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
  out = cv2.resize(patch, (crop_w, crop_h), interpolation=cv2.INTER_AREA)
  if channels == 1:
    out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None]
  return out


def resize_weights(size_in: int, size_out: int) -> np.ndarray:
  """(size_in, size_out) weights of jax.image.resize's 'bilinear' method:
  a triangle kernel widened by the shrink factor, each column summing to 1."""
  inv_scale = size_in / size_out
  width = max(inv_scale, 1.0)
  sample = (np.arange(size_out) + 0.5) * inv_scale - 0.5
  weights = np.maximum(
      0.0, 1.0 - np.abs(sample[None, :] - np.arange(size_in)[:, None]) / width)
  weights /= weights.sum(axis=0, keepdims=True)
  return weights.astype(np.float32)


def model_input(crops: np.ndarray, spec: dict) -> np.ndarray:
  """float32 NHWC input from uint8 crops, as the recipe's "model_input"."""
  x = crops.astype(np.float32) / np.float32(255.0)
  height, width = spec["resize"]["to"]
  if x.shape[1:3] != (height, width):
    x = np.einsum("nhwc,hy,wx->nyxc", x, resize_weights(x.shape[1], height),
                  resize_weights(x.shape[2], width)).astype(np.float32)
  rule = spec["channels"]["rule"]
  if rule == "tile":
    x = np.tile(x, (1, 1, 1, spec["channels"]["to"]))
  elif rule == "mean":
    x = x.mean(axis=-1, keepdims=True)
  mean = np.asarray(spec["mean"], np.float32)
  std = np.asarray(spec["std"], np.float32)
  return (x - mean) / std


def probabilities(session: ort.InferenceSession, recipe: dict,
                  crops: np.ndarray) -> np.ndarray:
  """Calibrated class probabilities (N, C) of uint8 crops."""
  feed = session.get_inputs()[0]
  if feed.type == "tensor(uint8)":  # --preprocess-in-graph
    return session.run(None, {feed.name: crops})[0].astype(np.float64)
  logits = session.run(None, {feed.name: model_input(
      crops, recipe["model_input"])})[0].astype(np.float64)
  logits /= recipe["output"]["temperature"] or 1.0
  logits -= logits.max(axis=1, keepdims=True)
  e = np.exp(logits)
  return e / e.sum(axis=1, keepdims=True)


def recognise(session: ort.InferenceSession, recipe: dict, path: str,
              faces: list[dict]) -> dict:
  """{"path", "faces"} for ``faces`` given as {"box", "eyes"}."""
  image = load_rgb(path)
  labels = recipe["output"]["labels"]
  crops = np.stack([crop_face(image, f["box"], f["eyes"], recipe["crop"])
                    for f in faces]) if faces else np.zeros(
                        (0, *recipe["crop"]["shape"]), np.uint8)
  probs = probabilities(session, recipe, crops) if faces else []
  return {"path": path, "faces": [
      {"box": f["box"], "label": labels[int(np.argmax(p))],
       "scores": dict(zip(labels, map(float, p)))}
      for f, p in zip(faces, probs)]}


def _faces_of(record: dict) -> list[dict]:
  """Boxes and eyes of one of ferjax predict's JSON lines."""
  faces = []
  for face in record["faces"]:
    precise = face.get("precise") or {}
    marks = precise.get("landmarks") or face.get("landmarks")
    eyes = ((marks["left_eye"], marks["right_eye"])
            if marks and "left_eye" in marks else None)
    faces.append({"box": precise.get("box", face["box"]), "eyes": eyes})
  return faces


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("model", help="an ONNX file from ferjax export")
  parser.add_argument("--predictions", metavar="JSONL",
                      help="ferjax predict's output: its images and faces")
  parser.add_argument("--image", help="an image file")
  parser.add_argument("--box", type=float, nargs=4, metavar=("X", "Y", "W", "H"))
  parser.add_argument("--eyes", type=float, nargs=4,
                      metavar=("LX", "LY", "RX", "RY"))
  args = parser.parse_args()
  if (args.predictions is None) == (args.image is None):
    parser.error("give --predictions JSONL, or --image with --box")
  if args.image is not None and args.box is None:
    parser.error("--image needs --box X Y W H")
  session = ort.InferenceSession(args.model,
                                 providers=["CPUExecutionProvider"])
  recipe = read_recipe(session)
  if args.image is not None:
    eyes = None if args.eyes is None else (args.eyes[:2], args.eyes[2:])
    print(json.dumps(recognise(session, recipe, args.image,
                               [{"box": args.box, "eyes": eyes}])))
    return
  with open(args.predictions) as f:
    records = [json.loads(line) for line in f if line.strip()]
  for record in records:
    if "faces" not in record or "frame" in record:
      continue  # An unreadable image, or a video frame.
    result = recognise(session, recipe, record["path"], _faces_of(record))
    for face, theirs in zip(result["faces"], record["faces"]):
      face["max_abs_diff"] = max(abs(face["scores"][k] - v)
                                 for k, v in theirs["scores"].items())
    print(json.dumps(result))


if __name__ == "__main__":
  main()
