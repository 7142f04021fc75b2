"""Ten-crop test-time augmentation (``tta = 'ten_crop'``, ``crop_size``).

The four corners and the centre, each also mirrored; the mean of their
class probabilities is the image's.
"""

import functools
from collections.abc import Callable
from typing import Any


def views(eval_config: Any) -> Callable[..., Any]:
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  return functools.partial(augment.ten_crop,
                           crop_size=tuple(eval_config.crop_size))
