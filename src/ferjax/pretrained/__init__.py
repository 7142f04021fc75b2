"""Models that ship with ferjax, as exported run directories.

``fer2013_resnet`` (the default): ``resnet_fer_mid``, a compact ResNet on
grey 48x48 faces, trained on FER2013 by ``experiments/fer2013_resnet.py``
(40 epochs, 134 minutes on a shared 2-core CPU), best checkpoint by
validation accuracy (step 7,839 of 8,040), temperature 0.901 fitted on the
validation slice. PublicTest accuracy 0.6718, macro F1 0.6254 (flip
0.6748, ten-crop 0.6762; ECE after calibration 0.023;
experiments/RESULTS.md, "The default model").
Made at commit c066ae8 (with `:size=48,epochs=40`, the recipe's defaults
since) with

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
        "a compact ResNet trained on FER2013 (PublicTest accuracy 0.672)"),
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
