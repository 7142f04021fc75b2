"""Models that ship with ferjax, as exported run directories.

``fer2013_lenet5``: the review's LeNet-5 (32x32x3) trained on FER2013 by
``experiments/fer2013_lenet.py`` (30 epochs, 27 minutes on a 2-core CPU),
best checkpoint by validation accuracy (step 4,824 of 6,030). PublicTest
accuracy 0.5110, macro F1 0.4159 (ten-crop 0.5322). Made at commit c75f416
with

  ferjax train --config experiments/fer2013_lenet.py \\
      --config.input.manual_dir=FER2013_DIR --workdir runs/fer2013_lenet
  ferjax export --workdir runs/fer2013_lenet \\
      --out src/ferjax/pretrained/fer2013_lenet5

Its manifest and metrics are those of that run. ``ferjax predict`` uses it
when no ``--workdir`` is given.
"""

import pathlib

FER2013_LENET5 = pathlib.Path(__file__).parent / "fer2013_lenet5"
