"""The tests' tiny random speech models: the package's writer (core/representations/tiny_speech.py)."""
from brainalign.core.representations.tiny_speech import TINY_FAMILIES, save_tiny_speech_model  # noqa: F401
