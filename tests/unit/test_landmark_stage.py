"""The landmark stage: FaceMesh's crop geometry, meshes in image pixels,
and `ferjax predict --landmarks` on a generated photo and video."""

import json
import math

import cv2
import numpy as np
import pytest

from ferjax.commands import predict as predict_command
from ferjax.data import synthetic_fer
from ferjax.landmarks import crop as crop_lib
from ferjax.recognition.align import Face
from ferjax.recognition.mesh import Mesher

CENTRE = (200.0, 200.0)


def test_the_crop_maps_image_points_both_ways():
  image = np.zeros((300, 400, 3), np.uint8)
  image[150:152, 250:252] = 255  # A 2x2 dot centred at (251, 151).
  matrix = crop_lib.crop_matrix((200, 100, 80, 100), math.radians(15))
  crop = crop_lib.warp(image, matrix)
  y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
  expected = matrix[:, :2] @ (251.0, 151.0) + matrix[:, 2]
  assert np.hypot(x + 0.5 - expected[0], y + 0.5 - expected[1]) < 1.5
  points = np.array([[[expected[0], expected[1], 10.0]]])
  back = crop_lib.to_image(points, matrix)[0, 0]
  np.testing.assert_allclose(back[:2], (251.0, 151.0), atol=1e-9)
  # 100 pixels of the face's side (times 1.5) fill the crop's 192.
  assert back[2] == pytest.approx(10.0 * 150 / 192)


def test_no_roll_without_eyes_or_for_an_implausible_eye_line():
  assert crop_lib.roll(None, (1, 2)) == 0.0
  assert crop_lib.roll((0, 0), (10, 10)) == pytest.approx(math.pi / 4)
  assert crop_lib.roll((0, 0), (10, 20)) == 0.0


def face_scene(degrees: float) -> tuple[np.ndarray, Face]:
  """A generated face (160 px) in a 400x400 image, rolled by ``degrees``
  about the image centre, with the box and eye points a detector gives."""
  grey = synthetic_fer.render_face(np.random.default_rng(0), 3)
  canvas = np.full((400, 400), 90, np.uint8)
  canvas[120:280, 120:280] = cv2.resize(grey, (160, 160),
                                        interpolation=cv2.INTER_LINEAR)
  rotation = cv2.getRotationMatrix2D(CENTRE, -degrees, 1.0)
  rolled = cv2.warpAffine(canvas, rotation, (400, 400), flags=cv2.INTER_LINEAR,
                          borderValue=90)
  eyes = np.array([[165.0, 180.0, 1.0], [235.0, 180.0, 1.0]]) @ rotation.T
  face = Face((120, 120, 160, 160), 0.99,
              {"left_eye": tuple(eyes[0]), "right_eye": tuple(eyes[1])})
  return np.repeat(rolled[..., None], 3, axis=2), face


@pytest.fixture(scope="module")
def mesher():
  return Mesher()


def test_the_mesh_of_a_rolled_face_is_the_rolled_mesh(mesher):
  upright, face = face_scene(0.0)
  rolled, rolled_face = face_scene(25.0)
  (mesh,), (rolled_mesh,) = mesher.meshes_of_frames(
      [upright, rolled], [[face], [rolled_face]])
  rotation = cv2.getRotationMatrix2D(CENTRE, -25.0, 1.0)
  expected = np.c_[mesh.points[:, :2], np.ones(468)] @ rotation.T
  error = np.abs(rolled_mesh.points[:, :2] - expected).max()
  assert error < 1.0, error  # Pixels of a 160-pixel face; resampling only.
  assert abs(rolled_mesh.score - mesh.score) < 0.05
  # In the image: the nose tip (1) within the face box, below the eyes.
  assert 120 < mesh.points[1, 0] < 280 and 180 < mesh.points[1, 1] < 280
  assert mesher.meshes(upright, []) == []


class FixedFace:
  """A detector that finds the generated face where it was drawn."""

  def __init__(self, face: Face):
    self.face = face

  def detect(self, image: np.ndarray) -> list[Face]:
    del image
    return [self.face]


def test_predict_landmarks_on_a_photo_and_a_video(classifier, tmp_path,
                                                  capsys):
  image, face = face_scene(10.0)
  photo = tmp_path / "face.png"
  cv2.imwrite(str(photo), image)
  clip = tmp_path / "face.avi"
  writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (400, 400))
  for _ in range(3):
    writer.write(image)
  writer.release()
  out = tmp_path / "out"
  assert predict_command.run([str(photo), str(clip)], classifier,
                             FixedFace(face), out, landmarks=True,
                             detect_every=1) == 0
  records = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
  assert len(records) == 4  # The photo and three frames.
  for record in records:
    (found,) = record["faces"]
    points = np.array(found["mesh"]["points"])
    assert points.shape == (468, 3) and 0 <= found["mesh"]["score"] <= 1
    assert 120 < points[1, 0] < 280 and 150 < points[1, 1] < 300
  assert (out / "face.png").is_file() and (out / "face.avi").is_file()
  assert predict_command.run([str(photo)], classifier,
                             FixedFace(face)) == 0
  (plain,) = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
  assert "mesh" not in plain["faces"][0]
