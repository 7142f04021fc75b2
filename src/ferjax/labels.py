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
