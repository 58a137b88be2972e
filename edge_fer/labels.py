"""The 7 FER2013 expressions, in the order of the FER2013 CSV label ids."""

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(LABELS)
LABEL_TO_ID = {name: i for i, name in enumerate(LABELS)}
