"""ferjax: facial expression recognition research in JAX and Flax."""

from typing import Any

__version__ = "0.1.0"


def recognize(image: Any, classifier: Any = None, *,
              color_order: str | None = None, detector: Any = "auto",
              margin: float = 0.1) -> list[Any]:
  """The faces of ``image`` and their expressions, in one call.

  ``image``: an image file's path (str or Path), a PIL image, or a numpy
  array: (H, W) grey or (H, W, 3|4) colour with ``color_order`` 'rgb' or
  'bgr' (what cv2.imread gives), uint8, uint16 or float in [0, 1].
  ``classifier``: the bundled FER2013 model unless given (``load_classifier``
  or ``load_ensemble`` of ``ferjax.recognition.classifier``); ``detector``:
  'auto', 'mtcnn', 'haar' or any object with ``detect``. Returns
  ``pipeline.FaceResult``s (``label``, ``scores``, ``box`` (x, y, w, h) and
  ``landmarks`` in image pixels), [] when there is no face; a ValueError,
  TypeError or FileNotFoundError says what is wrong with the image. JAX
  and the model load at the first call, not at ``import ferjax``.
  """
  from ferjax.recognition import api
  return api.recognize(image, classifier, color_order=color_order,
                       detector=detector, margin=margin)
