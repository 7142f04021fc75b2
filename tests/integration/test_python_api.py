"""examples/python_api.py, the README's Python API, runs as written."""

import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from helpers import PHOTOS, REPO

PHOTO = pathlib.Path(os.environ.get("FERJAX_PHOTOS") or PHOTOS) / "faces" / (
    "happy-baby.jpeg")


@pytest.mark.slow  # About a minute: a short training run and MTCNN.
def test_python_api_example(tmp_path, synthetic_data_dir):
  photo = PHOTO
  if not photo.is_file():  # Without the shared photos: a face-less image.
    photo = tmp_path / "blank.png"
    cv2.imwrite(str(photo), np.full((120, 160, 3), 200, np.uint8))
  proc = subprocess.run(
      [sys.executable, str(REPO / "examples" / "python_api.py"), str(photo),
       "--workdir", str(tmp_path / "run"), "--data-dir", synthetic_data_dir],
      capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert out.startswith("finished run of lenet5\n")
  assert re.search(r"^  step 16: test accuracy 0\.\d{4}$", out, re.M), out
  assert re.search(r"^test\[:500\] .* 500$", out, re.M), out
  faces = re.search(rf"^{re.escape(str(photo))}: (\d+) face\(s\)$", out, re.M)
  assert faces, out
  if photo == PHOTO:
    assert int(faces[1]) >= 1
    assert re.search(r"^  (angry|disgust|fear|happy|sad|surprise|neutral) "
                     r"\(\d\.\d\d\) at x=\d+ y=\d+, \d+x\d+ pixels$", out,
                     re.M), out
  assert "WARNING:absl" not in proc.stderr
