"""Models that ship with ferjax, as exported run directories.

``fer2013_lenet5`` (the default): the review's LeNet-5 (32x32x3) trained on
FER2013 by ``experiments/fer2013_lenet.py`` (30 epochs, 27 minutes on a
2-core CPU), best checkpoint by validation accuracy (step 4,824 of 6,030).
PublicTest accuracy 0.5110, macro F1 0.4159 (ten-crop 0.5322). Made at
commit c75f416 with

  ferjax train --config experiments/fer2013_lenet.py \\
      --config.input.manual_dir=FER2013_DIR --workdir runs/fer2013_lenet
  ferjax export --workdir runs/fer2013_lenet \\
      --out src/ferjax/pretrained/fer2013_lenet5

Its manifest and metrics are those of that run. It is installed with the
package (in site-packages for a non-editable install): every command that
reads a run directory takes ``--pretrained [NAME]`` in place of
``--workdir DIR`` (``ferjax eval --pretrained``), ``ferjax predict`` uses it
when no ``--workdir`` is given, and from Python::

  from ferjax import pretrained
  from ferjax.recognition.classifier import load_classifier
  classifier = load_classifier()  # = load_classifier(pretrained.path())
"""

import pathlib

FER2013_LENET5 = pathlib.Path(__file__).parent / "fer2013_lenet5"
# MediaPipe FaceMesh's converted weights (ferjax.landmarks.facemesh), not a
# run directory: see its PROVENANCE.txt.
FACEMESH = pathlib.Path(__file__).parent / "facemesh"

MODELS = {"fer2013_lenet5": FER2013_LENET5}
DEFAULT = "fer2013_lenet5"


def path(name: str = DEFAULT) -> pathlib.Path:
  """The run directory of the bundled model ``name``."""
  if name not in MODELS:
    raise ValueError(f"--pretrained: no bundled model {name!r}; expected one "
                     f"of {', '.join(MODELS)}")
  return MODELS[name]

