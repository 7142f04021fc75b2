"""An image file's pixel size from its header, before anything is decoded.

A few hundred bytes of PNG or JPEG may declare a 30000x30000 image that
takes gigabytes to decode (a decompression bomb). Reading the size first
lets a caller refuse it, as Pillow's ``MAX_IMAGE_PIXELS`` guard does. The
formats are those OpenCV decodes for ferjax: PNG, JPEG, GIF, BMP, WebP and
TIFF; anything else has no known size.
"""

import struct

# JPEG start-of-frame markers: SOF0-SOF15 but DHT (C4), JPG (C8), DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
  """(width, height) that ``data``'s header declares, or None when it is
  not one of the formats above or its header is cut short."""
  try:
    for reader in (_png, _jpeg, _gif, _bmp, _webp, _tiff):
      size = reader(data)
      if size is not None:
        return size
  except (struct.error, IndexError):
    return None
  return None


def _png(data: bytes) -> tuple[int, int] | None:
  if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
    return None
  return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
  if data[:2] != b"\xff\xd8":
    return None
  at = 2
  while at + 4 <= len(data):
    if data[at] != 0xFF:
      return None
    marker = data[at + 1]
    if marker == 0xFF:  # Fill byte.
      at += 1
      continue
    if marker in (0x01, *range(0xD0, 0xD8)):  # No length field.
      at += 2
      continue
    if marker in _SOF:
      height, width = struct.unpack(">HH", data[at + 5:at + 9])
      return width, height
    at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
  return None


def _gif(data: bytes) -> tuple[int, int] | None:
  if data[:6] not in (b"GIF87a", b"GIF89a"):
    return None
  return struct.unpack("<HH", data[6:10])


def _bmp(data: bytes) -> tuple[int, int] | None:
  if data[:2] != b"BM":
    return None
  if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER.
    return struct.unpack("<HH", data[18:22])
  width, height = struct.unpack("<ii", data[18:26])
  return abs(width), abs(height)  # Negative height: stored top-down.


def _webp(data: bytes) -> tuple[int, int] | None:
  if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
    return None
  chunk = data[12:16]
  if chunk == b"VP8 ":
    width, height = struct.unpack("<HH", data[26:30])
    return width & 0x3FFF, height & 0x3FFF
  if chunk == b"VP8L":
    bits = struct.unpack("<I", data[21:25])[0]
    return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
  if chunk == b"VP8X":
    return (1 + int.from_bytes(data[24:27], "little"),
            1 + int.from_bytes(data[27:30], "little"))
  return None


def _tiff(data: bytes) -> tuple[int, int] | None:
  order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
  if order is None:
    return None
  ifd = struct.unpack(order + "I", data[4:8])[0]
  count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
  found = {}
  for i in range(count):
    entry = data[ifd + 2 + 12 * i:ifd + 14 + 12 * i]
    tag, kind = struct.unpack(order + "HH", entry[:4])
    if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG.
      found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"),
                                 entry[8:10] if kind == 3 else entry[8:12])[0]
  if len(found) < 2:
    return None
  return found[256], found[257]
