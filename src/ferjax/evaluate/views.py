"""Test-time views by name: how an eval turns each image into the views
whose class probabilities are averaged (``config.evals.<name>.tta``).

An entry's ``views(eval_config)`` is None to classify every image as it is,
or a function from a device's batch of images to (views, batch, ...) images
(``ViewsFn``); ``fields`` are the eval fields it reads, each with its check,
which ``config_checks`` applies. A new view is one entry here. Metrics are
the same whatever the view, and so is ``weights``: the run's variables
('raw') or their moving average ('ema'), picked by
``train.split_evaluator``. The one part of evaluation that training and the
config checks use, so it sits below both (``tests/unit/test_imports.py``).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

# A batch of images -> (views, batch, ...) images.
ViewsFn = Callable[[jnp.ndarray], jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class View:
  """One kind of test-time view and the eval fields it reads."""

  views: Callable[[Any], ViewsFn | None]
  # (field, what is expected, check of its value) for each field it reads.
  fields: tuple[tuple[str, str, Callable[[Any], bool]], ...] = ()
  # Which views mirror the image, in order (what travels with an image, its
  # face's geometry, is mirrored with it); () for the image as it is.
  mirrored: tuple[bool, ...] = ()


def _none(eval_config: Any) -> None:  # pylint: disable=unused-argument
  """Every image classified as it is."""
  return None


def _flip(eval_config: Any) -> ViewsFn:  # pylint: disable=unused-argument
  """The image and its mirror image: two views, and no crop, so the model
  sees the scale it was trained at."""
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  return augment.flip_views


def _ten_crop(eval_config: Any) -> ViewsFn:
  """The four corners and the centre, each also mirrored."""
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  return functools.partial(augment.ten_crop,
                           crop_size=tuple(eval_config.crop_size))


def _is_size(value: Any) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) == 2 and
          all(isinstance(v, int) and v > 0 for v in value))


VIEWS: dict[str, View] = {
    "none": View(_none),
    "flip": View(_flip, mirrored=(False, True)),
    "ten_crop": View(_ten_crop, (("crop_size", "(height, width) for ten-crop",
                                  _is_size),),
                     mirrored=(False,) * 5 + (True,) * 5),
}
