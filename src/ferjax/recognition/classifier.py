"""A trained model, or an ensemble of them, packaged for inference on faces."""

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax import calibration
from ferjax.data import preprocess
from ferjax.labels import check_same_labels
from ferjax.models import saliency
from ferjax.recognition.align import Face, align_faces
from ferjax.run.model import LoadedModel, load_model


class NonFiniteScores(FloatingPointError):
  """A model gave NaN or infinite class probabilities: the model, not the
  input, is at fault, so prediction stops instead of reporting per image."""


@dataclasses.dataclass(frozen=True)
class FaceScores:
  """Class probabilities of the faces of one image, ``probs`` (N, C); for an
  ensemble also each member's, as (name, (N, C)) pairs, whose mean ``probs``
  is."""

  probs: np.ndarray
  members: tuple[tuple[str, np.ndarray], ...] = ()
  # softmax(logits / T), T from ferjax calibrate; an ensemble's is
  # ``calibration.calibrated_flag`` of its members' (``member_calibrated``).
  calibrated: bool | str = False
  member_calibrated: tuple[bool, ...] = ()


@dataclasses.dataclass(frozen=True)
class Classifier:
  """Maps uint8 face crops, in the format of the training images, to scores.

  The crops are given at the training set's stored shape (``crop_shape``, e.g.
  48x48x1 for FER2013) so that inference reuses the evaluation preprocessing
  (resize, channels, normalisation) instead of re-implementing it.
  """

  class_names: tuple[str, ...]
  crop_shape: tuple[int, int, int]
  predict_fn: Callable[[jnp.ndarray], jnp.ndarray]
  source: str = "the model"  # Named in errors: the checkpoint it came from.
  temperature: float | None = None  # Its calibration, if it has one.
  # (crops, classes) -> saliency maps (N, H, W) of the crops (``explain``).
  explain_fn: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray] | None = None

  def predict(self, crops: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 ``(N, num_classes)``, for uint8 crops."""
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.shape[1:] != self.crop_shape:
      raise ValueError(
          f"crops must be uint8 of shape (N, {', '.join(map(str, self.crop_shape))}),"
          f" got {crops.dtype} {crops.shape}")
    n = len(crops)
    if not n:
      return np.zeros((0, len(self.class_names)), np.float32)
    # Padded to a few batch sizes, so that a new face count does not
    # compile the model again.
    padded = np.zeros((batch_bucket(n), *self.crop_shape), np.uint8)
    padded[:n] = crops
    probs = np.asarray(self.predict_fn(jnp.asarray(padded)), np.float32)[:n]
    if not np.isfinite(probs).all():
      raise NonFiniteScores(
          f"{self.source} gives non-finite class probabilities (NaN or "
          "infinity); its scores would mean nothing")
    return probs

  def explain(self, crops: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Saliency maps, float32 (N, H, W) in [0, 1] over uint8 crops (N, H,
    W, C), of ``classes``: Grad-CAM, or the input gradient
    (``models.saliency.explain``)."""
    if self.explain_fn is None:
      raise ValueError(f"{self.source}: no saliency maps (a classifier not "
                       "made by classifier_from_model)")
    n = len(crops)
    padded = np.zeros((batch_bucket(n), *self.crop_shape), np.uint8)
    padded[:n] = crops
    chosen = np.zeros(len(padded), np.int32)
    chosen[:n] = classes
    return np.asarray(self.explain_fn(jnp.asarray(padded),
                                      jnp.asarray(chosen)), np.float32)[:n]

  def score_faces(self, image: np.ndarray, faces: Sequence[Face], *,
                  margin: float = 0.1) -> FaceScores:
    """Probabilities of ``faces`` in uint8 RGB ``image``, each aligned into
    a ``crop_shape`` crop (see ``align.align_faces``)."""
    return FaceScores(self.predict(
        align_faces(image, faces, self.crop_shape, margin=margin)),
                      calibrated=self.temperature is not None)


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """Several classifiers of one label set used as one: their mean softmax.

  Each member aligns the faces at its own ``crop_shape`` and preprocesses
  them its own way (input size, channels, normalisation), as
  ``evaluate.run_evaluation.evaluate_ensemble`` does for a split; ``names`` (the
  members' run directories) label each member's scores.
  """

  members: tuple[Classifier, ...]
  names: tuple[str, ...]

  def __post_init__(self):
    if len(self.members) != len(self.names) or len(self.members) < 2:
      raise ValueError(f"an ensemble needs at least two members with one name "
                       f"each, got {len(self.members)} and {len(self.names)}")
    check_same_labels(self.names, [m.class_names for m in self.members])

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.members[0].class_names

  def score_faces(self, image: np.ndarray, faces: Sequence[Face], *,
                  margin: float = 0.1) -> FaceScores:
    """The members' mean probabilities of ``faces``, and each member's."""
    probs = [m.score_faces(image, faces, margin=margin).probs
             for m in self.members]
    calibrated = tuple(m.temperature is not None for m in self.members)
    return FaceScores(np.mean(probs, axis=0, dtype=np.float32),
                      tuple(zip(self.names, probs, strict=True)),
                      calibration.calibrated_flag(calibrated), calibrated)


# What the recognition pipeline and streams classify faces with.
FaceClassifier = Classifier | Ensemble


def batch_bucket(n: int) -> int:
  """The batch size ``n`` crops are padded to: the next power of two up to
  64, then the next multiple of 64."""
  return 1 << max(0, n - 1).bit_length() if n <= 64 else -(-n // 64) * 64


def classifier_from_model(model: nn.Module, variables: Any, *,
                          class_names: Sequence[str],
                          crop_shape: Sequence[int],
                          image_size: Sequence[int], channels: int,
                          mean: Sequence[float],
                          std: Sequence[float],
                          source: str = "the model",
                          temperature: float | None = None) -> Classifier:
  """Wraps a model and its variables with the evaluation preprocessing;
  ``source`` (where the variables came from) is named in errors; with
  ``temperature`` the scores are softmax(logits / temperature)."""
  divisor = 1.0 if temperature is None else float(temperature)

  def inputs(crops: jnp.ndarray) -> jnp.ndarray:
    return preprocess.to_model_input(
        preprocess.to_unit_float(crops), image_size=image_size,
        channels=channels, mean=mean, std=std)

  @jax.jit
  def predict_fn(crops: jnp.ndarray) -> jnp.ndarray:
    logits = model.apply(variables, inputs(crops), train=False)
    return jax.nn.softmax(logits / divisor)

  @jax.jit
  def explain_fn(crops: jnp.ndarray, classes: jnp.ndarray) -> jnp.ndarray:
    maps = saliency.explain(model, variables, inputs(crops), classes).maps
    return jax.image.resize(maps, crops.shape[:3], "bilinear")

  return Classifier(tuple(class_names), tuple(crop_shape), predict_fn, source,
                    temperature, explain_fn)


def load_ensemble(workdirs: Sequence[str],
                  checkpoint: str = "best") -> Ensemble:
  """The ensemble of the runs' best (or given) checkpoints.

  Label sets are compared, from the runs' manifests, before any checkpoint
  is read: members that classify different labels fail at once.
  """
  from ferjax.run.run_dir import RunDir
  workdirs = [str(w) for w in workdirs]
  check_same_labels(workdirs, [RunDir(w).dataset()["class_names"]
                               for w in workdirs])
  return Ensemble(tuple(load_classifier(w, checkpoint) for w in workdirs),
                  tuple(workdirs))


def load_classifier(workdir: str | os.PathLike | None = None,
                    checkpoint: str = "best") -> Classifier:
  """The classifier of a training run: its best (or given) checkpoint.

  Class names, the stored image format and the normalisation all come from
  the run's own records, so inference preprocesses exactly as evaluation did.
  Without ``workdir``: the bundled model (``ferjax.pretrained``). A
  temperature stored for that checkpoint (``ferjax calibrate``) is applied.
  """
  return classifier_of(load_model(workdir, checkpoint))


def classifier_of(loaded: LoadedModel) -> Classifier:
  """``loaded``'s model with its run's preprocessing and temperature."""
  config, dataset = loaded.config, loaded.dataset
  return classifier_from_model(
      loaded.model, loaded.variables, class_names=dataset["class_names"],
      crop_shape=dataset["image_shape"], image_size=config.input.image_size,
      channels=config.input.channels, mean=config.input.mean,
      std=config.input.std, source=loaded.source,
      temperature=loaded.temperature)
