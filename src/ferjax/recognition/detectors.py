"""Face detectors by name, as models and losses are.

A new detector is a module with a class whose ``detect(image)`` returns
``align.Face`` boxes for a uint8 RGB image (``pipeline.Detector``) and one
entry here. The pipeline runs it on downscaled copies of each image, longer
side ``sides``, and merges what it finds at every size
(``pipeline.MultiResolution``, which explains ``min_face`` and
``min_score``).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ferjax.recognition.haar import HaarDetector
from ferjax.recognition.mtcnn import MIN_FACE_SIZE, MTCNN

# The least MTCNN score of a reported face. The original's 0.8 buys recall
# for detection benchmarks; a face here is classified, and averaged over an
# audience. In benchmarks/detection.py every false MTCNN detection (textures,
# a suit, hair) scored 0.82-0.96, every true one 0.954 or more but a profile
# (0.875); the suit's 0.95-0.96 came only from 18-23 pixel patches, which
# pipeline.MultiResolution leaves to its largest copy (``min_face``).
MIN_SCORE = 0.9


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
  """How to build a detector (once per process), the sizes it sees, the
  smallest face (in pixels of its input) it finds and the least score of a
  face it reports (faces without a score are reported)."""

  build: Callable[[], Any]
  sides: tuple[int, ...]
  min_face: float = 0.0
  min_score: float = 0.0


DETECTORS: Mapping[str, DetectorSpec] = {
    # MTCNN at two resolutions, the faces merged (see ``pipeline``).
    "auto": DetectorSpec(MTCNN, (640, 1024), MIN_FACE_SIZE, MIN_SCORE),
    "haar": DetectorSpec(HaarDetector, (1024,)),
    "mtcnn": DetectorSpec(MTCNN, (1024,), MIN_FACE_SIZE, MIN_SCORE),
}
