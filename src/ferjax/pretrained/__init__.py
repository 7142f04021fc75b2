"""Models that ship with ferjax, as exported run directories.

``fer2013_resnet`` (the default): ``resnet_fer_mid``, a compact ResNet on
grey 40x40 faces, trained on FER2013 by ``experiments/fer2013_resnet.py``
(30 epochs, 70 minutes on a loaded 2-core CPU), best checkpoint by
validation accuracy (step 5,628 of 6,030), temperature 0.864 fitted on the
validation slice. PublicTest accuracy 0.6434, macro F1 0.5887 (flip
0.6576, ten-crop 0.6531; experiments/RESULTS.md, "The default model").
Made at commit 32bd06a with

  ferjax train --config experiments/fer2013_resnet.py \\
      --config.input.manual_dir=FER2013_DIR --workdir runs/fer2013_resnet
  ferjax calibrate --workdir runs/fer2013_resnet
  ferjax export --workdir runs/fer2013_resnet \\
      --out src/ferjax/pretrained/fer2013_resnet

``fer2013_lenet5``: the review's LeNet-5 (32x32x3) trained by
``experiments/fer2013_lenet.py`` (30 epochs, 27 minutes on a 2-core CPU,
best checkpoint step 4,824 of 6,030, PublicTest accuracy 0.5110, macro F1
0.4159, ten-crop 0.5322), made at commit c75f416 the same way.

Each manifest and metrics file is that of its run. They are installed with
the package (in site-packages for a non-editable install): every command
that reads a run directory takes ``--pretrained [NAME]`` in place of
``--workdir DIR`` (``ferjax eval --pretrained``), ``ferjax predict`` uses
the default when no ``--workdir`` is given, and from Python::

  from ferjax.recognition.classifier import load_classifier
  classifier = load_classifier()  # = load_classifier(pretrained.path())
"""

import dataclasses
import pathlib

_HERE = pathlib.Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Bundled:
  """A shipped run directory and the one line that tells a user what it is."""

  path: pathlib.Path
  summary: str


MODELS: dict[str, Bundled] = {
    "fer2013_resnet": Bundled(
        _HERE / "fer2013_resnet",
        "a compact ResNet trained on FER2013 (PublicTest accuracy 0.643)"),
    "fer2013_lenet5": Bundled(
        _HERE / "fer2013_lenet5",
        "the review's LeNet-5 trained on FER2013 (PublicTest accuracy 0.511)"),
}
DEFAULT = "fer2013_resnet"
FER2013_LENET5 = MODELS["fer2013_lenet5"].path
# MediaPipe FaceMesh's converted weights (ferjax.landmarks.facemesh), not a
# run directory: see its PROVENANCE.txt.
FACEMESH = _HERE / "facemesh"


def path(name: str = DEFAULT) -> pathlib.Path:
  """The run directory of the bundled model ``name``."""
  if name not in MODELS:
    raise ValueError(f"--pretrained: no bundled model {name!r}; expected one "
                     f"of {', '.join(MODELS)}")
  return MODELS[name].path
