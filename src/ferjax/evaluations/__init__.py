"""Kinds of evaluation by name, as models and losses are.

An eval in ``config.evals`` names its kind in ``tta``. A kind is one module
here with ``views(eval_config)``: None to classify every image as it is, or
a function from a device's batch of images to (views, batch, ...) images
whose class probabilities are averaged (``train.steps.TenCropFn``). A new
kind is a module and a line in ``EVALUATIONS``; its config fields get their
check in ``config_checks``. Metrics are ``train.metrics``' whatever the kind,
and so is ``weights``: the run's variables ('raw') or their moving average
('ema'), picked by ``train.split_evaluator``.
"""

from ferjax.evaluations import flip
from ferjax.evaluations import plain
from ferjax.evaluations import ten_crop

EVALUATIONS = {"none": plain, "flip": flip, "ten_crop": ten_crop}
