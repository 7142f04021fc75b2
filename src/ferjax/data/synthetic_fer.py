"""``synthetic_fer``: procedurally drawn 48x48 grey faces with FER2013 labels.

Why this dataset exists
-----------------------
FER2013 cannot be fetched automatically (it is downloaded by hand, from
Kaggle), yet the quickstart experiment, the tests and the docs all need *some*
facial expression data that behaves like it. ``synthetic_fer`` is that stand-in: it
needs no download, is bit-for-bit deterministic for a given version, and has
exactly FER2013's format -- 48x48x1 ``uint8`` images and the seven labels in
FER2013's order (``ferjax.labels.FER2013_CLASSES``) -- so every pipeline,
model and config that reads ``fer2013`` reads it unchanged.

It is deliberately *not* trivial. Each face is drawn from geometry (face
outline, hair, ears, eyes with irises, brows, nose, mouth, creases) and the
expression is carried only by the shapes of a few small parts, while random
identity (face shape, feature placement and size, skin and hair tone,
background), pose (rotation, translation, scale, a little yaw), lighting
(directional gradient, brightness, contrast, gamma), blur, occlusion (patches,
bars, glasses) and pixel noise move every pixel around. Measured on version
1.0.0: a multinomial logistic regression on standardised raw pixels reaches at
best 51% test accuracy (L2 swept over 1e-4..3, trained to convergence with
L-BFGS), while LeNet-5 at 32x32x3 with plain SGD (lr 0.05, momentum 0.9,
batch 128) reaches 97.2-97.6% after 10 epochs (three seeds; >= 94.6% from
epoch 4 on). The tests keep the linear bound below 60%.

The geometry of each expression
-------------------------------
Coordinates are in face units (the face's half-width is about 1, y points
down). Every parameter below is drawn uniformly from a class-specific range
(``_EXPRESSION``); the ranges of similar classes touch or overlap, so shapes
vary within a class and one cue alone rarely decides.

* **angry** (0): brows lowered and pulled into a steep V (inner ends down),
  vertical frown lines between them, eyes narrowed by a flat, lowered upper
  lid, lips pressed into a thick, straight line (sometimes bared, clenched
  teeth).
* **disgust** (1): nose wrinkled (short horizontal creases across the bridge,
  flared nostrils), deep nasolabial folds, upper lip raised on one side (a
  sneer that shows teeth there), brows mildly lowered, eyes squinting.
* **fear** (2): brows raised and drawn together with the inner ends lifted,
  eyes wide (white showing around the iris), mouth open and stretched
  sideways into a wide, flat, boxy shape with teeth.
* **happy** (3): mouth a wide U (corners well up), often open with teeth in a
  D shape, cheeks raised so the lower lids push the eyes into crescents,
  smile folds beside the mouth; brows relaxed.
* **sad** (4): inner ends of the brows raised into a tilted ^ shape, upper
  lids drooping at the outer corners, mouth a narrow downward arc with the
  corners pulled down.
* **surprise** (5): brows high and strongly arched, eyes wide and round, jaw
  dropped into a tall, round O-shaped mouth.
* **neutral** (6): straight, relaxed brows, normally open eyes, a thin, flat,
  closed mouth.

Determinism
-----------
Example ``index`` of split ``split`` is rendered by :func:`render_face` from
``np.random.default_rng([_SEED, split_id, index])`` alone, and its label is
``index % 7`` (so splits are exactly class-balanced). Neither the order of
generation nor any parallelism can change a pixel; changing the renderer in a
way that changes pixels must bump ``VERSION``.

Usage::

  builder = SyntheticFer(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()        # ~10 s on one core; no network, no TF
  source = builder.as_data_source("train")
  records = source.__getitems__(range(len(source)))    # ~0.5 s for 14,000
  images = np.stack([r["image"] for r in records])     # (14000, 48, 48, 1)
  labels = np.array([r["label"] for r in records])     # record i: i % 7
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import tensorflow_datasets as tfds

from ferjax.labels import FER2013_CLASSES

IMAGE_SIZE = 48
NUM_CLASSES = len(FER2013_CLASSES)
SPLIT_SIZES: dict[str, int] = {"train": 14_000, "test": 2_800}
_SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1}
_SEED = 20_13_48  # Any fixed constant; part of the version's definition.

# Faces are drawn at _SS times the output size and area-averaged down, which
# anti-aliases every edge. Coordinates handed to cv2 carry _SHIFT fractional
# bits, so shapes move continuously rather than in whole pixels.
_SS = 2
_CANVAS = IMAGE_SIZE * _SS
_SHIFT = 4
_ONE = 1 << _SHIFT

# Label indices, in FER2013's order (ferjax.labels.FER2013_CLASSES).
ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)

# Class-conditional ranges of the expression parameters (uniform draws).
#   brow_raise: whole brow up (+) / down (-);  brow_inner: inner end dropped
#   (+, angry V) or lifted (-, sad ^);  brow_arch: bow of the brow;
#   eye_open: upper-lid height;  eye_low: lower-lid height (small = cheeks up);
#   lid_tilt: outer corner of the upper lid dropped (sad droop);
#   mouth_w: half-width;  mouth_curve: corner drop (+ frown, - smile);
#   mouth_up / mouth_down: opening above / below the lip line;
#   mouth_box: exponent of the opening profile (small = boxy, 0.5 = oval).
_EXPRESSION: dict[str, tuple[tuple[float, float], ...]] = {
    #              angry         disgust       fear          happy         sad           surprise      neutral
    "brow_raise": ((-.10, -.04), (-.07, -.02), (.08, .14), (-.01, .04), (.00, .06), (.14, .22), (-.02, .03)),
    "brow_inner": ((.13, .21), (.03, .08), (-.10, -.05), (-.02, .03), (-.20, -.11), (-.02, .02), (-.02, .02)),
    "brow_arch": ((-.02, .02), (.00, .03), (.00, .03), (.02, .06), (-.02, .02), (.08, .14), (.02, .05)),
    "eye_open": ((.045, .07), (.04, .065), (.15, .19), (.05, .08), (.06, .09), (.16, .21), (.09, .12)),
    "eye_low": ((.05, .07), (.03, .05), (.09, .12), (.00, .02), (.06, .08), (.10, .13), (.06, .08)),
    "lid_tilt": ((-.02, .01), (-.01, .01), (-.02, .00), (-.01, .01), (.04, .07), (-.01, .01), (-.01, .01)),
    "mouth_w": ((.26, .34), (.28, .36), (.40, .50), (.40, .52), (.24, .32), (.16, .23), (.28, .38)),
    "mouth_curve": ((.00, .04), (.03, .08), (.00, .05), (-.22, -.12), (.10, .17), (-.01, .01), (-.02, .02)),
    "mouth_up": ((.00, .00), (.00, .00), (.03, .06), (.00, .02), (.00, .00), (.14, .20), (.00, .00)),
    "mouth_down": ((.00, .00), (.00, .00), (.06, .10), (.05, .12), (.00, .00), (.15, .22), (.00, .00)),
    "mouth_box": ((.5, .5), (.5, .5), (.2, .3), (.5, .7), (.5, .5), (.45, .55), (.5, .5)),
}

# Nuisance strengths, tuned so that raw-pixel logistic regression stays below
# 60% test accuracy while LeNet-5 exceeds 93% (see the module docstring).
# Like everything in this module they define the data: change one, bump
# VERSION.
NUISANCE: dict[str, float] = {
    "rotation_deg": 14.0,     # +- uniform in-plane rotation
    "translate_px": 4.0,      # +- uniform shift of the face centre (48-px units)
    "scale_min": 0.82,        # face scale range (1 = half-width of 18 px)
    "scale_max": 1.12,
    "yaw": 0.10,              # +- sideways shift of the inner features
    "gradient": 0.45,         # max strength of the directional light ramp
    "brightness": 0.12,       # +- additive brightness
    "contrast_min": 0.7,
    "contrast_max": 1.25,
    "gamma": 0.25,            # log-uniform gamma in exp(+-gamma)
    "blur_max": 0.7,          # max Gaussian blur sigma (48-px units)
    "noise_max": 0.045,        # max std of additive Gaussian pixel noise
    "occlusion_p": 0.25,      # chance of a random patch or bar
    "glasses_p": 0.12,        # chance of glasses frames
}


def _unit_circle(n: int) -> np.ndarray:
  t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
  return np.stack([np.cos(t), np.sin(t)], axis=1)


def _bezier_weights(n: int) -> np.ndarray:
  t = np.linspace(0.0, 1.0, n)[:, None]
  return np.concatenate([(1 - t) ** 2, 2 * (1 - t) * t, t ** 2], axis=1)


# Unit shapes are precomputed: Python overhead, not drawing, dominates the
# cost of a 48x48 face, and the build must stay fast.
_CIRCLE = {n: _unit_circle(n) for n in (10, 16, 20, 32, 48)}
_LOWER_HALF = _unit_circle(32)[:17]          # angles 0..pi: the y >= 0 half
_BEZIER = {n: _bezier_weights(n) for n in (6, 8, 12)}
_LID_T = np.linspace(0.0, math.pi, 14)
_LID_COS, _LID_SIN = np.cos(_LID_T), np.sin(_LID_T)
_LID_OUTER = np.clip(-_LID_COS, 0.0, 1.0)     # 0 at the inner half, 1 outer
_MOUTH_T = np.linspace(-1.0, 1.0, 17)
_BROW_TAPER = np.linspace(1.0, 0.45, 12)[:, None]
_ARC_U = np.linspace(0.0, 1.0, 12)
_HAIRLINE_U = np.linspace(1.0, -1.0, 9)[1:-1]
_RAMP = np.linspace(-1.0, 1.0, _CANVAS, dtype=np.float32)[None, :]
_YY, _XX = np.mgrid[-1:1:IMAGE_SIZE * 1j, -1:1:IMAGE_SIZE * 1j].astype(np.float32)
_NUM_DRAWS = 96  # scalar uniforms drawn up front (more than any face uses)


def _ellipse(cx: float, cy: float, ax: float, ay: float,
             n: int = 32) -> np.ndarray:
  return _CIRCLE[n] * (ax, ay) + (cx, cy)


def _curve(p0: tuple[float, float], pm: tuple[float, float],
           p1: tuple[float, float], n: int = 12) -> np.ndarray:
  """Quadratic Bezier from p0 to p1 pulled towards pm."""
  return _BEZIER[n] @ np.array([p0, pm, p1])


class _Painter:
  """Queues shapes in face units; draws them all through one affine map."""

  def __init__(self):
    self.ops: list[tuple[np.ndarray, float, float, bool]] = []

  def fill(self, pts: np.ndarray, value: float) -> None:
    self.ops.append((pts, float(value), 0.0, False))

  def line(self, pts: np.ndarray, value: float, width: float,
           closed: bool = False) -> None:
    self.ops.append((pts, float(value), width, closed))

  def draw(self, canvas: np.ndarray, matrix: np.ndarray,
           px_per_unit: float) -> None:
    """Draws in queue order (painter's algorithm), anti-aliased, sub-pixel."""
    pts = np.concatenate([op[0] for op in self.ops])
    xy = np.round((pts @ matrix[:, :2].T + matrix[:, 2]) * _ONE)
    xy = xy.astype(np.int32)
    start = 0
    for p, value, width, closed in self.ops:
      q = xy[start:start + len(p)]
      start += len(p)
      if width == 0.0:
        cv2.fillPoly(canvas, [q], value, cv2.LINE_AA, _SHIFT)
      else:
        thickness = max(1, int(width * px_per_unit + 0.5))
        cv2.polylines(canvas, [q], closed, value, thickness, cv2.LINE_AA,
                      _SHIFT)


def _background(rng: np.random.Generator, base: float, ramp: float,
                texture: float) -> np.ndarray:
  """Low-frequency random texture plus a horizontal ramp, uint8."""
  coarse = rng.standard_normal((4, 4), dtype=np.float32) * texture + base
  tex = cv2.resize(coarse, (_CANVAS, _CANVAS), interpolation=cv2.INTER_CUBIC)
  tex += ramp * _RAMP
  return np.clip(tex, 0, 255).astype(np.uint8)


def render_face(rng: np.random.Generator, label: int) -> np.ndarray:
  """Draws one 48x48 ``uint8`` grey face showing expression ``label``.

  Deterministic: the pixels depend only on the generator's state and
  ``label`` (an index into ``FER2013_CLASSES``); the generator is advanced.
  The sequence of random draws does not depend on ``label``, so one seed
  rendered with each label gives the same face, pose, lighting, occlusion and
  noise with seven different expressions.
  """
  label = int(label)
  if not 0 <= label < NUM_CLASSES:
    raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
  nz = NUISANCE
  draws = iter(rng.random(_NUM_DRAWS).tolist())

  def uni(lo: float, hi: float) -> float:
    return lo + (hi - lo) * next(draws)

  e = {k: uni(*v[label]) for k, v in _EXPRESSION.items()}

  # --- identity ------------------------------------------------------------
  skin = uni(110, 215)
  dark = skin * uni(0.25, 0.5)                  # brows, lid lines, lips
  hair = uni(10, 0.8 * skin)
  sclera = min(255.0, skin + uni(15, 50))
  face_w, face_h = uni(0.92, 1.05), uni(1.2, 1.36)
  eye_x, eye_y, eye_w = uni(0.36, 0.45), uni(-0.26, -0.14), uni(0.17, 0.22)
  brow_gap, brow_w, brow_t = uni(0.16, 0.22), uni(0.34, 0.42), uni(0.06, 0.09)
  nose_y, mouth_y, lip_t = uni(0.22, 0.32), uni(0.52, 0.64), uni(0.035, 0.06)
  iris_r = uni(0.07, 0.09)
  gaze_x, gaze_y = uni(-0.04, 0.04), uni(-0.03, 0.03)

  # --- pose ----------------------------------------------------------------
  scale = uni(nz["scale_min"], nz["scale_max"]) * 18.0 * _SS
  angle = math.radians(uni(-nz["rotation_deg"], nz["rotation_deg"]))
  tx = uni(-nz["translate_px"], nz["translate_px"]) * _SS
  ty = uni(-nz["translate_px"], nz["translate_px"]) * _SS
  c, s = math.cos(angle) * scale, math.sin(angle) * scale
  centre = _CANVAS / 2
  matrix = np.array([[c, -s, centre + tx],
                     [s, c, centre + 0.08 * scale + ty]])
  fx = uni(-nz["yaw"], nz["yaw"])  # inner features slide sideways with yaw

  pen = _Painter()
  # --- head ----------------------------------------------------------------
  pen.fill(_LOWER_HALF * (face_w * 0.5, 0.9) + (0, face_h * 0.8), skin * 0.85)
  pen.fill(_ellipse(0, -0.15, face_w * 1.1, face_h * 1.05), hair)
  for side in (-1, 1):
    pen.fill(_ellipse(side * face_w * 0.98, -0.05, 0.14, 0.26, n=16),
             skin * 0.92)
  pen.fill(_ellipse(0, 0, face_w, face_h, n=48), skin)
  # Fringe: the part of the back-hair ellipse above a wavy hairline.
  hair_ax, hair_ay = face_w * 1.1, face_h * 1.05
  fringe_y = uni(-1.25, -0.8)
  theta = math.asin((fringe_y + 0.15) / hair_ay)  # negative: above centre
  arc = (math.pi - theta) + (math.pi + 2 * theta) * _ARC_U
  cap = np.stack([hair_ax * np.cos(arc), -0.15 + hair_ay * np.sin(arc)], 1)
  wave = fringe_y + 0.1 * np.array([uni(-1, 1) for _ in range(7)])
  half = hair_ax * math.cos(theta)
  pen.fill(np.concatenate(
      [cap, np.stack([half * _HAIRLINE_U, wave], 1)]), hair)

  # --- eyes ----------------------------------------------------------------
  for side in (-1, 1):
    cx = side * eye_x + fx
    xs = cx - side * eye_w * _LID_COS   # inner corner -> outer corner
    upper = np.stack(
        [xs, eye_y - e["eye_open"] * _LID_SIN + e["lid_tilt"] * _LID_OUTER], 1)
    lower = np.stack([xs, eye_y + e["eye_low"] * _LID_SIN], 1)
    pen.fill(np.concatenate([upper, lower[::-1]]), sclera)
    pen.fill(_ellipse(cx + gaze_x, eye_y + gaze_y, iris_r, iris_r, n=16),
             dark * 0.6)
    # Skin above the upper and below the lower lid clips the iris.
    x0, x1 = cx - side * eye_w * 1.2, cx + side * eye_w * 1.2
    pen.fill(np.concatenate([upper, [[x1, eye_y - 0.3], [x0, eye_y - 0.3]]]),
             skin)
    pen.fill(np.concatenate([lower, [[x1, eye_y + 0.25], [x0, eye_y + 0.25]]]),
             skin)
    pen.line(upper, dark, 0.035)
    if label == HAPPY:  # raised cheeks: a crease under the crescent eye
      pen.line(lower + (0, 0.06), skin * 0.75, 0.025)

  # --- brows ---------------------------------------------------------------
  taper = _BROW_TAPER * (0.0, brow_t)
  for side in (-1, 1):
    inner_x = side * (uni(0.08, 0.13) - (0.03 if label == FEAR else 0.0)) + fx
    outer_x = inner_x + side * brow_w
    base = eye_y - brow_gap - e["brow_raise"]
    inner_y = base + e["brow_inner"]
    outer_y = base + uni(-0.02, 0.02)
    mid = ((inner_x + outer_x) / 2, (inner_y + outer_y) / 2 - e["brow_arch"])
    top = _curve((inner_x, inner_y), mid, (outer_x, outer_y))
    pen.fill(np.concatenate([top, (top + taper)[::-1]]), dark)
  if label == ANGRY:  # vertical frown lines between the brows
    y0 = eye_y - brow_gap + 0.02
    for dx in (-0.035, 0.035):
      pen.line(np.array([[fx + dx, y0 - 0.1], [fx + dx * 0.6, y0 + 0.06]]),
               skin * 0.7, 0.025)

  # --- nose ----------------------------------------------------------------
  nx = 1.6 * fx
  pen.line(np.array([[nx - 0.05, eye_y + 0.05], [nx - 0.08, nose_y - 0.02]]),
           skin * 0.85, 0.03)
  flare = 0.04 if label == DISGUST else 0.0
  for side in (-1, 1):
    pen.fill(_ellipse(nx + side * (0.09 + flare), nose_y, 0.045 + flare / 2,
                      0.03, n=10), dark * 0.9)
  if label == DISGUST:  # wrinkles across the bridge
    for k in range(3):
      yk = eye_y + 0.07 + 0.06 * k
      pen.line(_curve((nx - 0.12, yk + 0.02), (nx, yk - 0.03),
                      (nx + 0.12, yk + 0.02), n=6), skin * 0.5, 0.04)

  # --- mouth ---------------------------------------------------------------
  mx = 1.3 * fx
  mw = e["mouth_w"]
  tt = _MOUTH_T
  xs = mx + mw * tt
  base_y = mouth_y + e["mouth_curve"] * (tt ** 2 - 0.5)
  prof = (1 - tt ** 2) ** e["mouth_box"]
  upper_y = base_y - e["mouth_up"] * prof
  lower_y = base_y + e["mouth_down"] * prof
  sneer_side = 1 if uni(0, 1) < 0.5 else -1
  sneer = uni(0.10, 0.15)
  if label == DISGUST:  # one side of the upper lip raised
    upper_y = upper_y - sneer * np.clip(tt * sneer_side + 0.2, 0, 1)
  teeth = uni(0, 1) < 0.3 and label == ANGRY
  if teeth:  # clenched, bared teeth
    upper_y = upper_y - 0.035 * prof
    lower_y = lower_y + 0.035 * prof
  upper = np.stack([xs, upper_y], 1)
  lower = np.stack([xs, lower_y], 1)
  if (lower_y - upper_y).max() > 0.02:
    pen.fill(np.concatenate([upper, lower[::-1]]), dark * 0.35)  # opening
    if label in (FEAR, HAPPY, DISGUST) or teeth:
      teeth_low = np.minimum(upper_y + 0.045, lower_y)
      pen.fill(np.concatenate([upper, np.stack([xs, teeth_low], 1)[::-1]]),
               sclera)
    pen.line(upper, dark, lip_t * 0.8)
    pen.line(lower, dark, lip_t)
  else:
    pen.line(upper, dark, lip_t * (1.6 if label == ANGRY else 1.0))
  if label in (HAPPY, DISGUST):  # nasolabial / smile folds
    for side in (-1, 1):
      corner_x = mx + side * (mw + 0.06)
      pen.line(_curve((nx + side * 0.16, nose_y - 0.02),
                      (corner_x + side * 0.06, (nose_y + mouth_y) / 2),
                      (corner_x, base_y[-1] + 0.04), n=8),
               skin * 0.72, 0.03)

  # --- glasses (frames only; the eyes stay visible) --------------------------
  if uni(0, 1) < nz["glasses_p"]:
    gv = uni(0, 90)
    for side in (-1, 1):
      pen.line(_ellipse(side * eye_x + fx, eye_y, eye_w * 1.45, 0.16, n=20),
               gv, 0.035, closed=True)
    pen.line(np.array([[fx - eye_x + eye_w * 1.45, eye_y],
                       [fx + eye_x - eye_w * 1.45, eye_y]]), gv, 0.03)

  # --- background, then the face on top --------------------------------------
  canvas = _background(rng, uni(20, 200), uni(-40, 40), uni(5, 35))
  pen.draw(canvas, matrix, scale)

  # --- down-sample, light, blur, occlude, noise ------------------------------
  img = cv2.resize(canvas, (IMAGE_SIZE, IMAGE_SIZE),
                   interpolation=cv2.INTER_AREA).astype(np.float32)
  phi = uni(0, 2 * math.pi)
  light = 1.0 + uni(0, nz["gradient"]) * (
      _XX * math.cos(phi) + _YY * math.sin(phi))
  img = np.clip(img * (light / 255.0), 0.0, 1.0)
  img **= math.exp(uni(-nz["gamma"], nz["gamma"]))
  contrast = uni(nz["contrast_min"], nz["contrast_max"])
  img = (img - 0.5) * contrast + (0.5 + uni(-nz["brightness"],
                                           nz["brightness"]))
  sigma = uni(0, nz["blur_max"])
  if sigma > 0.25:
    img = cv2.GaussianBlur(img, (0, 0), sigma)
  if uni(0, 1) < nz["occlusion_p"]:
    _occlude(rng, img, uni)
  img += rng.standard_normal(img.shape, dtype=np.float32) * uni(
      0, nz["noise_max"])
  return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _occlude(rng: np.random.Generator, img: np.ndarray, uni) -> None:
  """Paints one random patch or bar in place (values in [0, 1])."""
  value = uni(0, 1)
  if uni(0, 1) < 0.5:  # patch, with a little texture
    h, w = int(uni(4, 11)), int(uni(4, 11))
    y, x = int(uni(0, IMAGE_SIZE - h)), int(uni(0, IMAGE_SIZE - w))
    img[y:y + h, x:x + w] = value + 0.05 * rng.standard_normal(
        (h, w), dtype=np.float32)
  else:  # bar right across the image
    px, py, ang = uni(0, IMAGE_SIZE), uni(0, IMAGE_SIZE), uni(0, math.pi)
    dx, dy = math.cos(ang) * IMAGE_SIZE, math.sin(ang) * IMAGE_SIZE
    p0 = (int((px - dx) * _ONE), int((py - dy) * _ONE))
    p1 = (int((px + dx) * _ONE), int((py + dy) * _ONE))
    cv2.line(img, p0, p1, value, int(uni(1, 3)), cv2.LINE_8, _SHIFT)


def example_seed(split: str, index: int) -> list[int]:
  """The seed sequence of example ``index`` of ``split``."""
  return [_SEED, _SPLIT_IDS[split], index]


def render_example(split: str, index: int) -> tuple[np.ndarray, int]:
  """Renders example ``index`` of ``split``: (48x48x1 uint8 image, label)."""
  label = index % NUM_CLASSES
  image = render_face(np.random.default_rng(example_seed(split, index)), label)
  return image[:, :, None], label


class SyntheticFer(tfds.core.GeneratorBasedBuilder):
  """Procedural 48x48 grey faces in FER2013's seven expression classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: 14,000 train and 2,800 test examples, "
               "class-balanced, rendered from per-example seeds.",
  }

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=(
            "Procedurally drawn 48x48 grey faces in FER2013's seven "
            "expression classes: a deterministic, no-download stand-in for "
            "FER2013. See the module docstring of ferjax.data.synthetic_fer."),
        features=tfds.features.FeaturesDict({
            # Raw bytes, not TFDS's default int64 list: 2.3 KB a record
            # instead of ~4 KB, and several times faster to write and read.
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8,
                encoding="bytes"),
            "label": tfds.features.ClassLabel(names=list(FER2013_CLASSES)),
        }),
        supervised_keys=("image", "label"),
        # Records stay in index order: record i of a split is
        # render_example(split, i), and its label is i % 7.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split, n)
            for split, n in SPLIT_SIZES.items()}

  def _generate_examples(self, split: str, num_examples: int):
    for index in range(num_examples):
      image, label = render_example(split, index)
      yield index, {"image": image, "label": label}
