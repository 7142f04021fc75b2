"""FaceMesh points of a prepared dataset: extracted once, cached beside it.

The geometric models (``models.geometry``) read faces as meshes, not
pixels. Running FaceMesh at every epoch would cost minutes per pass, so
each stored split is meshed once (the whole stored image is the face's box,
as in FER2013 and CK+48, cropped by MediaPipe's rule: 25% more on every side,
black there, upscaled to 192x192; on 128 PublicTest faces 115 then score
over 0.5, 98 with the image alone filling the crop) and the points are
written to ``<dataset dir>/landmarks/<split>/<first example>.npz`` (the
TFDS directory of that name, config and version), ``CHUNK`` faces a file,
each written atomically with the SHA-256 of the FaceMesh weights that made
it: other weights make a new cache. Sliced splits (``train[:90%]``) take
their examples by TFDS's slicing rules, extracting only the chunks they
touch. Faces whose face score is under ``LOW_SCORE`` are counted and
reported per split; they stay in the data (dropping them would change the
test set) and are classified like the others.
"""

import dataclasses
import hashlib
import io
import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from ferjax import atomic
from ferjax import filelock
from ferjax.data import loading
from ferjax.landmarks import crop as crop_lib
from ferjax.landmarks import facemesh

log = logging.getLogger("ferjax")

DIRNAME = "landmarks"
# FaceMesh's own threshold for "a face is there" (MediaPipe's 0.5).
LOW_SCORE = 0.5
BATCH = 64
# Examples per cache file: a slice extracts only the chunks it touches, and
# a stopped extraction keeps the chunks it finished.
CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class Meshes:
  """A split's meshes: (N, 468, 3) points in pixels of the stored images,
  (N,) face scores, (N,) labels."""

  points: np.ndarray
  scores: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def low_score(self) -> int:
    """How many faces FaceMesh scored under ``LOW_SCORE``."""
    return int(np.sum(self.scores < LOW_SCORE))


def weights_digest(path: pathlib.Path = facemesh.WEIGHTS) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def image_box_matrix(height: int, width: int) -> np.ndarray:
  """The crop matrix of a face whose box is the whole image."""
  return crop_lib.crop_matrix((0.0, 0.0, float(width), float(height)))


def mesh_images(images: np.ndarray, variables: dict | None = None, *,
                batch: int = BATCH,
                progress: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """FaceMesh on uint8 (N, H, W, 1|3) face images: points (N, 468, 3) in
  image pixels and scores (N,), ``batch`` faces per call."""
  variables = facemesh.load_variables() if variables is None else variables
  n, height, width = images.shape[:3]
  matrix = image_box_matrix(height, width)
  points = np.empty((n, facemesh.NUM_POINTS, 3), np.float32)
  scores = np.empty((n,), np.float32)
  size = facemesh.INPUT_SIZE
  for start in range(0, n, batch):
    chunk = images[start:start + batch]
    if chunk.shape[-1] == 1:
      chunk = np.repeat(chunk, 3, axis=-1)
    crops = np.zeros((batch, size, size, 3), np.float32)  # One shape.
    crops[:len(chunk)] = [crop_lib.warp(np.ascontiguousarray(c), matrix)
                          for c in chunk]
    p, s = facemesh.run(variables, crops)
    points[start:start + len(chunk)] = crop_lib.to_image(p[:len(chunk)],
                                                         matrix)
    scores[start:start + len(chunk)] = s[:len(chunk)]
    if progress is not None:
      progress(start + len(chunk))
  return points, scores


def chunk_path(builder: Any, split: str, start: int) -> pathlib.Path:
  return (pathlib.Path(builder.data_dir) / DIRNAME / split
          / f"{start:07d}.npz")


def _read_chunk(path: pathlib.Path, digest: str) -> Meshes | None:
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as stored:
      if str(stored["weights_sha256"]) != digest:
        log.info("%s: made by other FaceMesh weights; extracting again", path)
        return None
      return Meshes(stored["points"], stored["scores"], stored["labels"])
  except (OSError, ValueError, KeyError) as e:
    raise ValueError(f"{path}: not a readable landmark cache ({e}); delete "
                     "it to extract those landmarks again") from e


def _chunk(builder: Any, split: str, start: int, stop: int,
           digest: str) -> Meshes:
  """Examples [start, stop) of a stored split (``stop - start`` at most
  ``CHUNK``, ``start`` a multiple of it): cached, or meshed and cached now
  under the dataset's lock (parallel runs extract once)."""
  path = chunk_path(builder, split, start)
  if (found := _read_chunk(path, digest)) is not None:
    return found
  with filelock.held(pathlib.Path(builder.data_dir) / f".{DIRNAME}.lock"):
    if (found := _read_chunk(path, digest)) is not None:
      return found
    data = loading.read_split(builder, f"{split}[{start}:{stop}]")
    began = time.monotonic()
    points, scores = mesh_images(data.images)
    seconds = time.monotonic() - began
    meshes = Meshes(points, scores, np.asarray(data.labels, np.int32))
    log.info("landmarks of %s %s[%d:%d]: %.0f s (%.1f faces/s), %d scored "
             "under %.1f", builder.name, split, start, stop, seconds,
             len(data) / max(seconds, 1e-9), meshes.low_score, LOW_SCORE)
    buffer = io.BytesIO()
    np.savez(buffer, points=points, scores=scores, labels=meshes.labels,
             weights_sha256=np.array(digest), seconds=np.array(seconds))
    atomic.write_bytes(path, buffer.getvalue())
  return meshes


def _chunk_slices(builder: Any, split: str
                  ) -> list[tuple[str, int, int, slice]]:
  """(stored split, chunk start, chunk stop, rows of the chunk) of each
  chunk ``split`` touches, in order; TFDS slicing allowed."""
  loading.check_split(builder, split)
  instruction = tfds.core.ReadInstruction.from_spec(split)
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  out = []
  for absolute in instruction.to_absolute(dict(builder.info.splits.items())):
    name, size = absolute.splitname, sizes[absolute.splitname]
    first = absolute.from_ or 0
    last = size if absolute.to is None else absolute.to
    for start in range(first // CHUNK * CHUNK, last, CHUNK):
      out.append((name, start, min(start + CHUNK, size),
                  slice(max(first - start, 0), min(last - start, CHUNK))))
  return out


def missing_chunks(builder: Any, split: str) -> list[pathlib.Path]:
  """The cache files ``split`` needs that are not there yet."""
  return [path for name, start, _, _ in _chunk_slices(builder, split)
          if not (path := chunk_path(builder, name, start)).is_file()]


def read_meshes(builder: Any, split: str) -> Meshes:
  """The meshes of ``split``, TFDS slicing allowed (``train[:90%]``); only
  the chunks it touches are extracted."""
  digest = weights_digest()
  parts = []
  for name, start, stop, cut in _chunk_slices(builder, split):
    chunk = _chunk(builder, name, start, stop, digest)
    parts.append(Meshes(chunk.points[cut], chunk.scores[cut],
                        chunk.labels[cut]))
  return Meshes(*(np.concatenate([getattr(p, f) for p in parts])
                  for f in ("points", "scores", "labels")))
