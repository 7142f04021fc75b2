"""The landmark stage: FaceMesh's 468 points on detected faces.

After detection, each face is cropped as MediaPipe crops it (the box's
longer side plus 25% on every side, square, rotated upright by the
detector's eye line: ``landmarks.crop``), all crops of a call go through
FaceMesh in one batch (padded to ``classifier.batch_bucket`` sizes so a few
compiled shapes serve every count), and the points come back in image
pixels. ``meshes_of_frames`` batches the faces of several frames together.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ferjax.landmarks import crop as crop_lib
from ferjax.landmarks import facemesh
from ferjax.recognition.align import Face
from ferjax.recognition.classifier import batch_bucket


@dataclasses.dataclass(frozen=True)
class Mesh:
  """468 (x, y, z) points in image pixels and FaceMesh's face score."""

  points: np.ndarray
  score: float

  def to_json(self) -> dict[str, Any]:
    """{"score", "points"}: points rounded to 0.1 pixel."""
    return {"score": round(self.score, 4),
            "points": np.round(self.points, 1).tolist()}


def face_angle(face: Face) -> float:
  """The roll of ``face``'s eye line in radians (0 without eyes)."""
  eyes = face.landmarks or {}
  return crop_lib.roll(eyes.get("left_eye"), eyes.get("right_eye"))


class Mesher:
  """FaceMesh over faces of images; the weights load once per instance."""

  def __init__(self, variables: dict | None = None, *,
               margin: float = crop_lib.MARGIN):
    self.variables = facemesh.load_variables() if variables is None \
        else variables
    self.margin = margin

  def crops(self, image: np.ndarray, faces: Sequence[Face]
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """FaceMesh's float crops of ``faces`` in uint8 RGB ``image`` and the
    image-to-crop matrices."""
    matrices = [crop_lib.crop_matrix(f.box, face_angle(f), margin=self.margin)
                for f in faces]
    size = facemesh.INPUT_SIZE
    crops = np.stack([crop_lib.warp(image, m) for m in matrices]) if faces \
        else np.zeros((0, size, size, 3), np.float32)
    return crops, matrices

  def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop points (N, 468, 3) and scores (N,), padded to a bucket size."""
    n = len(crops)
    if not n:
      return np.zeros((0, facemesh.NUM_POINTS, 3), np.float32), np.zeros(0)
    padded = np.zeros((batch_bucket(n), *crops.shape[1:]), np.float32)
    padded[:n] = crops
    points, scores = facemesh.run(self.variables, padded)
    return points[:n], scores[:n]

  def meshes(self, image: np.ndarray, faces: Sequence[Face]) -> list[Mesh]:
    """One Mesh per face of ``image``, in one batch."""
    return self.meshes_of_frames([image], [faces])[0]

  def meshes_of_frames(self, images: Sequence[np.ndarray],
                       faces: Sequence[Sequence[Face]]) -> list[list[Mesh]]:
    """The meshes of every frame's faces, all frames in one batch."""
    crops, matrices = [], []
    for image, frame_faces in zip(images, faces, strict=True):
      c, m = self.crops(image, frame_faces)
      crops.append(c)
      matrices += m
    points, scores = self.run(np.concatenate(crops))
    meshes = [Mesh(crop_lib.to_image(p, m), float(s))
              for p, s, m in zip(points, scores, matrices)]
    out, start = [], 0
    for frame_faces in faces:
      out.append(meshes[start:start + len(frame_faces)])
      start += len(frame_faces)
    return out
