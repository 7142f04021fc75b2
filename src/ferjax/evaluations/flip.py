"""The image and its mirror image (``tta = 'flip'``).

The cheapest test-time augmentation: two views instead of ten-crop's ten,
and no crop, so the model sees the scale it was trained at.
"""

from collections.abc import Callable
from typing import Any


def views(eval_config: Any) -> Callable[..., Any]:  # pylint: disable=unused-argument
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  return augment.flip_views
