"""Each example's geometric descriptor, carried beside its image.

For CNNs that fuse the face's geometry (``model.fusion.features=
('geometry',)``, ``models.fusion``): the descriptor of
``landmarks.action_units`` (twelve action-unit measures and the
Procrustes-aligned mesh) of the example's cached FaceMesh mesh
(``data.landmarks``), aligned to the training split's mean shape and
standardised with the training split's mean and std, the features the
geometry_svm family reads. The statistics are a function of the training
split alone, so training and a later ``ferjax eval`` compute the same ones.

Each example carries two rows: its face's descriptor and its mirror
image's (``action_units.mirror``). Training takes the second where its
random flip mirrored the image, and test-time views where they mirror it,
so the features always describe the face the CNN sees.

The meshes are read by the split's own name, so they line up with the
images row for row; every label of the cache is checked against the
split's, and a disagreement is an error, never a silent shift.
"""

import dataclasses
from typing import Any

import numpy as np

from ferjax.data import landmarks
from ferjax.data import loading
from ferjax.landmarks import action_units

# A descriptor element that barely varies on the training split is divided
# by this instead of by its std (the geometry_svm family's floor).
MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class Standardizer:
  """The training split's mean shape and descriptor statistics."""

  reference: np.ndarray  # (468, 2): what meshes are aligned to.
  mean: np.ndarray  # (D,)
  std: np.ndarray  # (D,)

  @classmethod
  def fit(cls, points: np.ndarray) -> "Standardizer":
    """From the training split's (N, 468, 3) meshes."""
    reference = action_units.mean_shape(points)
    x = action_units.descriptor(points, reference)
    return cls(reference, x.mean(0),
               np.maximum(x.std(0), MIN_STD).astype(np.float32))

  def __call__(self, points: np.ndarray) -> np.ndarray:
    """(N, 468, 2|3) meshes -> (N, 2, D) float32: the standardised
    descriptor of each face, then of its mirror image."""
    rows = [action_units.descriptor(p, self.reference)
            for p in (points, action_units.mirror(points))]
    return ((np.stack(rows, axis=1) - self.mean) / self.std
            ).astype(np.float32)


def with_geometry(split: loading.Split, meshes: landmarks.Meshes,
                  standardizer: Standardizer, name: str) -> loading.Split:
  """``split`` with its ``geometry`` and ``mesh_scores``; ``meshes`` must be
  the same examples in the same order (``name`` is named if not)."""
  if len(meshes) != len(split) or not np.array_equal(
      np.asarray(meshes.labels), np.asarray(split.labels)):
    raise ValueError(
        f"the landmark cache of split {name!r} does not line up with its "
        f"images ({len(meshes)} meshes for {len(split)} images, or other "
        f"labels): delete the dataset's {landmarks.DIRNAME}/ directory and "
        "rebuild it with `ferjax data prepare <dataset> --landmarks`")
  return dataclasses.replace(split, geometry=standardizer(meshes.points),
                             mesh_scores=np.asarray(meshes.scores,
                                                    np.float32))


def attach(builder: Any, train_split: str,
           splits: dict[str, loading.Split]) -> dict[str, loading.Split]:
  """Every split of ``splits`` (keyed by its TFDS split name, as
  ``loading.load_partitions`` returns them) with its geometry, standardised
  by ``train_split``'s statistics. The landmark cache must hold them all:
  extracting FaceMesh for a whole dataset takes minutes, which ``ferjax
  data prepare --landmarks`` does once, not a training run by surprise."""
  for name in sorted({train_split, *splits}):
    if missing := landmarks.missing_chunks(builder, name):
      raise ValueError(
          f"config.model.fusion.features has 'geometry', which reads each "
          f"face's landmarks from the cache beside the prepared data, but "
          f"the cache of {builder.name} split {name!r} lacks {missing[0]}"
          f"{f' and {len(missing) - 1} more files' if len(missing) > 1 else ''}"
          f"; build it with `ferjax data prepare {builder.name} --landmarks` "
          f"(with the --data-dir/--manual-dir of this run)")
  train = landmarks.read_meshes(builder, train_split)
  standardizer = Standardizer.fit(train.points)
  out = {}
  for name, split in splits.items():
    meshes = train if name == train_split else landmarks.read_meshes(
        builder, name)
    out[name] = with_geometry(split, meshes, standardizer, name)
  return out


def low_score_meshes(split: loading.Split) -> int:
  """How many of the split's faces FaceMesh scored under ``LOW_SCORE``."""
  return int(np.sum(split.mesh_scores < landmarks.LOW_SCORE))
