"""Audio in: decoding, resampling, mixing down; and synthesis of mixtures."""

from listenloop.audio.io import load_audio

__all__ = ["load_audio"]
