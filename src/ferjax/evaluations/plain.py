"""Every image classified as it is (``tta = 'none'``)."""

from typing import Any


def views(eval_config: Any) -> None:  # pylint: disable=unused-argument
  return None
