"""Face images of any size as the 48x48 grey crops every ferjax dataset stores.

RAF-DB, AffectNet and JAFFE hand out larger (and colour) images; storing
them as FER2013 stores its faces lets every model, config and bundled
checkpoint read them unchanged and evaluate across datasets. A crop is the
square around a face box (AffectNet's) or the whole image (RAF-DB's aligned
faces, JAFFE's portraits), resized with area averaging.
"""

from collections.abc import Sequence

import cv2
import numpy as np

from ferjax.data.image_files import IMAGE_SIZE
from ferjax.data.image_header import image_size

# The most pixels an image may declare: AffectNet's largest photos are a few
# megapixels; a small file declaring more is a decompression bomb.
MAX_PIXELS = 100_000_000


def decode_any_grey(data: bytes, where: str) -> np.ndarray:
  """(H, W) uint8 grey of an image file of any size; palette images are
  turned grey through their palette (cv2 applies it)."""
  declared = image_size(data)
  if declared is not None and declared[0] * declared[1] > MAX_PIXELS:
    raise ValueError(f"{where}: image declares {declared[0]}x{declared[1]} "
                     f"pixels, more than {MAX_PIXELS}")
  image = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
           if declared else None)
  if image is None:
    raise ValueError(f"{where}: not a readable image")
  return image


def square_crop(image: np.ndarray, box: Sequence[float] | None = None,
                size: int = IMAGE_SIZE) -> np.ndarray:
  """The (size, size) crop of the square around ``box`` (x, y, w, h; None:
  the whole image), its side the box's longer one; pixels outside the image
  repeat the border, as ``recognition.align`` crops."""
  height, width = image.shape[:2]
  x, y, w, h = box if box is not None else (0, 0, width, height)
  side = max(w, h)
  cx, cy = x + w / 2.0, y + h / 2.0
  scale = size / side
  # Maps the square's corner to (0, 0) and its side to `size` pixels: one
  # resampling, area-averaged when shrinking.
  if scale < 1.0:
    out = max(1, round(side))
    matrix = np.float32([[1, 0, out / 2.0 - cx], [0, 1, out / 2.0 - cy]])
    patch = cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
  matrix = np.float32([[scale, 0, size / 2.0 - cx * scale],
                       [0, scale, size / 2.0 - cy * scale]])
  return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
