"""Face detectors by name, as models and losses are.

A new detector is a module with a class whose ``detect(image)`` returns
``align.Face`` boxes for a uint8 RGB image (``pipeline.Detector``) and one
entry here. The pipeline runs it on downscaled copies of each image, longer
side ``sides``, and merges what it finds at every size.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ferjax.recognition.haar import HaarDetector
from ferjax.recognition.mtcnn import MTCNN


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
  """How to build a detector (once per process), and the sizes it sees."""

  build: Callable[[], Any]
  sides: tuple[int, ...]


DETECTORS: Mapping[str, DetectorSpec] = {
    # MTCNN at two resolutions, the faces merged (see ``pipeline``).
    "auto": DetectorSpec(MTCNN, (640, 1024)),
    "haar": DetectorSpec(HaarDetector, (1024,)),
    "mtcnn": DetectorSpec(MTCNN, (1024,)),
}
