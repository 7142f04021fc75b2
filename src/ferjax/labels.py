"""Class names of the datasets ferjax knows, in each dataset's label order."""

from collections.abc import Sequence

FER2013_CLASSES: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# CK+48 folder names, sorted as distributed; contempt replaces neutral.
CKPLUS_CLASSES: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def check_same_labels(members: Sequence[str],
                      class_names: Sequence[Sequence[str]]) -> None:
  """Refuses ensemble members (named by ``members``) whose class names differ,
  also in order only: averaging their probabilities would mix classes."""
  first = tuple(class_names[0])
  for member, names in zip(members[1:], class_names[1:], strict=True):
    if tuple(names) != first:
      raise ValueError(
          f"ensemble members classify different labels: {members[0]} has "
          f"{', '.join(first)}; {member} has {', '.join(names)}")


# FER+ and AffectNet: FER2013's seven in its order, then contempt, so that
# the first seven indices mean what they mean in FER2013.
FER2013_CONTEMPT_CLASSES: tuple[str, ...] = FER2013_CLASSES + ("contempt",)

# Other spellings of those names in datasets' label lists and users' class
# folders (RAF-DB's "Happiness", CK+'s "sadness", a folder "surprised").
SYNONYMS: dict[str, str] = {
    "anger": "angry", "disgusted": "disgust", "fearful": "fear",
    "afraid": "fear", "happiness": "happy", "sadness": "sad",
    "surprised": "surprise", "contemptuous": "contempt"}


def canonical_name(name: str) -> str | None:
  """``name`` as ferjax spells the expression (case and synonyms), or None
  when it is none of FER2013's classes or contempt."""
  key = name.strip().lower()
  key = SYNONYMS.get(key, key)
  return key if key in FER2013_CONTEMPT_CLASSES else None
