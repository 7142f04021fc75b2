"""The review's traditional path on FER2013: key points, FACS-like measures,
an SVM (no pixels reach the classifier).

  ferjax data prepare fer2013 --manual-dir ~/Downloads/fer2013 --landmarks
  ferjax train --config experiments/fer2013_geometry.py \\
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/fer2013_geometry
  ferjax eval --workdir runs/fer2013_geometry

FaceMesh's 468 points of every face are extracted once and cached beside
the prepared data (``data prepare --landmarks`` does it ahead; else the
first run does); each face becomes the twelve action-unit measures and its
Procrustes-aligned mesh (``landmarks.action_units``), standardised, and a
one-vs-rest squared-hinge SVM is fitted on the whole training split
(``train.geometry``: ``num_epochs`` is its L-BFGS iteration budget).
Training split, validation slice and PublicTest as in fer2013_lenet.py.
Each eval reports the faces FaceMesh scored under 0.5
(``low_score_meshes``). Config arguments: ``kernel=linear|rbf`` (RBF:
Nystrom features of 1,024 training faces), ``c=C``, ``runlocal`` (2,048
training faces, 512 validation, about a minute once the landmarks are
cached).
"""

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False, kernel="linear", c=1.0)
  config = config_lib.base_config()
  config.num_epochs = 300
  config.input.dataset = "fer2013"
  config.input.builder_config = "original"
  config.input.train_split = "train[:2048]" if args.runlocal else "train[:90%]"
  val = "train[2048:2560]" if args.runlocal else "train[90%:]"
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split=val, tta="none"),
      public_test=dict(split="public_test", tta="none")))
  config.model.name = "geometry_svm"
  config.model.kwargs = ml_collections.ConfigDict(dict(
      kernel=args.kernel, c=args.c))
  config.checkpoint.best_metric = "val/accuracy"
  return config


def get_sweep(arg: str | None = None) -> list[dict]:
  del arg
  return sweep.product(sweep.axis("model.kwargs.kernel", ["linear", "rbf"]),
                       sweep.axis("model.kwargs.c", [0.1, 1.0]))
