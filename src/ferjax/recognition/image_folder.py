"""A user's class folders as a TFDS builder whose faces are cropped as
``ferjax predict`` crops them.

Each image is read as predict reads it (``predict.load_image``), its faces
found by the named detector at predict's resolutions and thresholds
(``pipeline.get_detector``) and the best one (highest score, then largest)
aligned by ``align.align_face`` at predict's margin, into FER2013's 48x48
grey: a model trained here sees at training what it sees in a photo. Images
where no face is found are not stored and listed by file (the build log and
``info.metadata["no_face"]``); images with several faces are listed too
(``multiple_faces``). The ``aligned`` config takes already cropped faces
(FER2013's image folders, say) whole, without detection.

It lives with recognition, not ``ferjax.data``, because it runs the
detectors; the data registry names it like any builder.
"""

from collections.abc import Iterator
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data import class_folders
from ferjax.data.image_files import IMAGE_SIZE
from ferjax.labels import FER2013_CLASSES
from ferjax.recognition.align import Face, align_face
from ferjax.recognition.detectors import DETECTORS
from ferjax.recognition.pipeline import get_detector
from ferjax.recognition.predict import ImageError, load_image

_log = logging.getLogger(__name__)

CROP_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)
# pipeline.recognize's margin: the fraction of the face added on each side.
MARGIN = 0.1
ALIGNED = "aligned"

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Your own images, in class folders: pass the folder as `--manual-dir DIR`:
  DIR/<class>/<image>                  (everything in split train), or
  DIR/{{train,val,test}}/<class>/<image> (your splits)
<class> is one of {', '.join(FER2013_CLASSES)} or a synonym (anger,
happiness, sadness, surprised, ...); DIR/{class_folders.MAPPING_FILE} maps
other names ({{"folder": "happy"}}, null to leave a folder out). Images are
{', '.join(class_folders.IMAGE_SUFFIXES)}. Build each folder into its own
--data-dir: the build remembers which folder it was made from.
"""


def best_face(faces: list[Face]) -> Face:
  """The face a labelled image is about: highest score, then largest."""
  return max(faces, key=lambda f: (f.score or 0.0, f.box[2] * f.box[3]))


def crop(image: np.ndarray, detector: str) -> tuple[np.ndarray | None, int]:
  """The 48x48 grey crop of ``image``'s face and the number of faces found
  (``aligned``: the whole image, one face)."""
  if detector == ALIGNED:
    height, width = image.shape[:2]
    return align_face(image, Face((0.0, 0.0, float(width), float(height))),
                      CROP_SHAPE, margin=0.0), 1
  faces = get_detector(detector).detect(image)
  if not faces:
    return None, 0
  return align_face(image, best_face(faces), CROP_SHAPE,
                    margin=MARGIN), len(faces)


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """Your images in class folders, faces detected and aligned as predict's."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name=name, description=f"Faces found by predict's {name!r} "
          "detector, aligned as predict aligns them.")
      for name in DETECTORS] + [
          tfds.core.BuilderConfig(
              name=ALIGNED, description="Already cropped faces, taken "
              "whole (no detection).")]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=CROP_SHAPE, dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=FER2013_CLASSES),
            "source_id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = Path(dl_manager.manual_dir).resolve()
    listing = class_folders.list_images(root)
    detector = self.builder_config.name
    examples = {}
    no_face, several = [], []
    for f in listing.files:
      try:
        image = load_image(root / f.path)
      except ImageError as e:
        raise ValueError(str(e)) from None
      face, count = crop(image, detector)
      if face is None:
        no_face.append(f.path)
        continue
      if count > 1:
        several.append(f.path)
      examples.setdefault(f.split, []).append((f.path, {
          "image": face, "label": f.label, "source_id": f.path}))
    self.info.metadata.update({
        "source": str(root), "detector": detector,
        "classes": listing.classes, "left_out": listing.left_out,
        "no_face": no_face, "multiple_faces": several})
    if no_face:
      _log.warning("image_folder: no face found in %d of %d images (not "
                   "stored): %s", len(no_face), len(listing.files),
                   ", ".join(no_face))
    if not examples:
      raise ValueError(f"{root}: no face found in any of its "
                       f"{len(listing.files)} images (detector {detector!r})")
    return {split: self._generate_examples(split_examples)
            for split, split_examples in examples.items()}

  def _generate_examples(self, examples: list[tuple[str, dict]]
                         ) -> Iterator[tuple[str, dict]]:
    yield from examples

  def check_source(self, manual_dir: str | os.PathLike[str]) -> None:
    """Refuses a build made from another folder than ``manual_dir``: one
    --data-dir holds one image folder's build."""
    built_from = (self.info.metadata or {}).get("source")
    wanted = str(Path(os.path.expanduser(manual_dir)).resolve())
    if built_from and built_from != wanted:
      raise ValueError(
          f"{self.data_dir} holds the image folder {built_from}, not "
          f"{wanted}; build each folder into its own --data-dir")

