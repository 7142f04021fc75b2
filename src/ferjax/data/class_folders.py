"""A user's own images in class folders, their classes named as ferjax's.

``DIR/<class>/<image>`` puts everything in ``train``; ``DIR/<split>/<class>/
<image>`` with splits ``train``, ``val`` (or ``validation``) and ``test``
keeps the user's split. Folder names are mapped to FER2013's class names by
case and the synonyms of ``labels.SYNONYMS`` (``Anger`` -> ``angry``), or
by the user's ``classes.json`` in ``DIR`` (``{"folder": "happy"}``, ``null``
to leave a folder out); a folder neither names is an error, so no class is
ever merged or dropped without the user saying so.
"""

import dataclasses
import json
from pathlib import Path

from ferjax.labels import FER2013_CLASSES, canonical_name

MAPPING_FILE = "classes.json"
SPLIT_FOLDERS: dict[str, str] = {"train": "train", "val": "val",
                                 "validation": "val", "test": "test"}
# What OpenCV decodes (as ``ferjax predict`` scans folders).
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff",
                  ".webp")


@dataclasses.dataclass(frozen=True)
class ImageFile:
  """One image: its split, path relative to the folder, FER2013 label."""
  split: str
  path: str
  label: int


@dataclasses.dataclass(frozen=True)
class Listing:
  """What a class-folder tree holds, and how its folders were mapped."""
  files: list[ImageFile]
  classes: dict[str, str | None]  # Folder name -> ferjax name (None: left out).
  left_out: dict[str, int]  # Folder name -> images in it, mapped to null.


def _visible_dirs(folder: Path) -> list[Path]:
  return sorted(p for p in folder.iterdir()
                if p.is_dir() and not p.name.startswith("."))


def read_mapping(root: Path) -> dict[str, str | None]:
  """The user's folder -> class mapping (``classes.json``), checked."""
  path = root / MAPPING_FILE
  if not path.is_file():
    return {}
  try:
    mapping = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not JSON ({e}); expected "
                     '{"<folder>": "<class>" or null}') from None
  if not isinstance(mapping, dict):
    raise ValueError(f"{path}: expected an object "
                     '{"<folder>": "<class>" or null}')
  for folder, name in mapping.items():
    if name is not None and name not in FER2013_CLASSES:
      raise ValueError(f"{path}: {folder!r} maps to {name!r}, not one of "
                       f"{', '.join(FER2013_CLASSES)} (or null to leave the "
                       "folder out)")
  return mapping


def class_of(folder: str, mapping: dict[str, str | None], root: Path,
             where: Path) -> str | None:
  """The ferjax class of class folder ``folder`` in ``where`` under
  ``root``; None if the user left it out."""
  if folder in mapping:
    return mapping[folder]
  name = canonical_name(folder)
  if name not in FER2013_CLASSES:
    raise ValueError(
        f"{where}: class folder {folder!r} is none of ferjax's classes "
        f"({', '.join(FER2013_CLASSES)}) or their synonyms; map it in "
        f'{root / MAPPING_FILE} ({{"{folder}": "<class>"}}, or null to '
        "leave it out)")
  return name


def list_images(root: Path) -> Listing:
  """Every image under ``root``'s class folders (hidden files skipped);
  a file that is not an image, or a class folder that maps to nothing, is
  an error naming it."""
  if not root.is_dir():
    raise FileNotFoundError(f"{root}: not a folder; expected DIR/<class>/"
                            "<image> or DIR/{train,val,test}/<class>/<image>")
  mapping = read_mapping(root)
  tops = _visible_dirs(root)
  splits = [d for d in tops if d.name in SPLIT_FOLDERS]
  if splits and len(splits) != len(tops):
    named = ", ".join(d.name for d in splits)
    others = ", ".join(d.name for d in tops if d.name not in SPLIT_FOLDERS)
    raise ValueError(f"{root}: split folders ({named}) beside other "
                     f"folders ({others}); expected "
                     "either split folders or class folders")
  trees = ([(SPLIT_FOLDERS[d.name], d) for d in splits] if splits
           else [("train", root)])
  files, classes, left_out = [], {}, {}
  for split, tree in trees:
    for folder in _visible_dirs(tree):
      name = class_of(folder.name, mapping, root, tree)
      classes[folder.name] = name
      images = []
      for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
          continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
          raise ValueError(f"{path}: not an image file "
                           f"({', '.join(IMAGE_SUFFIXES)})")
        images.append(path.relative_to(root).as_posix())
      if name is None:
        left_out[folder.name] = left_out.get(folder.name, 0) + len(images)
        continue
      files += [ImageFile(split, p, FER2013_CLASSES.index(name))
                for p in images]
  if not files:
    raise ValueError(f"{root}: no images in class folders")
  return Listing(files, classes, left_out)
