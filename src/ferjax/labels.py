"""Class names of the datasets ferjax knows, in each dataset's label order."""

FER2013_CLASSES: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# CK+48 folder names, sorted as distributed; contempt replaces neutral.
CKPLUS_CLASSES: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
