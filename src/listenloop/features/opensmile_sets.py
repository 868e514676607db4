"""openSMILE functionals (eGeMAPSv02, ComParE_2016) through openSMILE's C API.

The `opensmile` package builds a new openSMILE instance, parsing the whole configuration,
for every file. Here one instance per (feature set, sample rate) lives for the whole
process and is `reset()` between files: the same values, bit for bit, in less time
(the configuration parse is a large part of the per-file cost on short clips).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from typing import Any, ClassVar

import numpy as np

from listenloop.features.registry import FEATURE_VERSION, Extractor, register

#: Signals shorter than this are zero-padded at the end: openSMILE's functionals need a few
#: complete frames (ComParE's longest window is 60 ms), and produce nothing otherwise.
MIN_SECONDS = 0.1

# (feature set, level, sample rate) -> (live openSMILE instance, feature names); per process.
_INSTANCES: dict[tuple[str, str, int], Any] = {}


def _smile_options(feature_set: str, level: str) -> tuple[str, dict[str, Any]]:
    """Config path and options that read from an external audio source, as `opensmile.Smile` does."""
    import opensmile
    from opensmile.core.config import config

    smile = opensmile.Smile.__new__(opensmile.Smile)  # only for its config helpers: no parse
    smile.options = {}
    smile.feature_set = opensmile.FeatureSet[feature_set]
    smile.feature_level = opensmile.FeatureLevel[level]
    options = smile._options()
    options["source"] = os.path.join(smile.default_config_root, config.EXTERNAL_INPUT_CONFIG)
    return smile.config_path, options


class _Instance:
    """One initialised openSMILE pipeline for one sample rate, reused across signals."""

    def __init__(self, feature_set: str, level: str, sr: int) -> None:
        from opensmile.core.config import config
        from opensmile.core.lib import OpenSMILE

        path, options = _smile_options(feature_set, level)
        options["sampleRate"] = sr
        options["nBits"] = 16
        self.smile = OpenSMILE()
        self.smile.initialize(config_file=path, options=options, loglevel=0)
        self.source = config.EXTERNAL_SOURCE_COMPONENT
        self.sink = config.EXTERNAL_OUTPUT_COMPONENT
        n = self.smile.external_sink_get_num_elements(self.sink)
        self.names = [self.smile.external_sink_get_element_name(self.sink, i) for i in range(n)]

    def run(self, pcm16: np.ndarray) -> np.ndarray | None:
        """Features of one int16 signal, or None when openSMILE produced no frame."""
        out: list[np.ndarray] = []
        self.smile.external_sink_set_callback_ex(self.sink, lambda data, meta: out.append(data.copy()))
        self.smile.external_audio_source_write_data(self.source, pcm16.tobytes())
        self.smile.external_audio_source_set_eoi(self.source)
        self.smile.run()
        self.smile.reset()
        return np.ravel(out[0]) if out else None

    def free(self) -> None:
        self.smile.free()


@functools.cache
def _opensmile_version() -> str:
    return importlib.metadata.version("opensmile")


def _instance(feature_set: str, level: str, sr: int) -> _Instance:
    key = (feature_set, level, sr)
    inst = _INSTANCES.get(key)
    if inst is None:
        inst = _INSTANCES[key] = _Instance(feature_set, level, sr)
    return inst


class OpenSmileExtractor(Extractor):
    """An openSMILE feature set at the Functionals level: one vector per file."""

    feature_set: ClassVar[str] = ""
    level: ClassVar[str] = "Functionals"
    n_features: ClassVar[int] = 0

    @property
    def dim(self) -> int:
        return self.n_features

    @property
    def names(self) -> list[str]:
        return list(_instance(self.feature_set, self.level, 16000).names)

    @property
    def version(self) -> str:
        # Package metadata, not `import opensmile`: a cache lookup should not pay its import.
        return f"{FEATURE_VERSION}/opensmile-{_opensmile_version()}"

    def extract(self, signal: np.ndarray, sr: int) -> np.ndarray:
        """openSMILE's functionals of `signal` at its own rate (16-bit, as `opensmile` feeds it)."""
        signal = np.asarray(signal, dtype=np.float32).ravel()
        minimum = int(np.ceil(MIN_SECONDS * sr))
        if signal.size < minimum:
            signal = np.pad(signal, (0, minimum - signal.size))
        # opensmile.Smile multiplies by 32768 and casts, wrapping full-scale samples; clip instead.
        pcm = np.clip(signal * 32768.0, -32768, 32767).astype(np.int16)
        inst = _instance(self.feature_set, self.level, int(sr))
        try:
            values = inst.run(pcm)
        except Exception:
            # A failed run may leave the instance half-way: never reuse it.
            _INSTANCES.pop((self.feature_set, self.level, int(sr)), None)
            inst.free()
            raise
        if values is None:
            raise ValueError(f"openSMILE produced no {self.name} features ({signal.size} samples at {sr} Hz)")
        return values.astype(np.float32, copy=False)


@register
class EGeMAPS(OpenSmileExtractor):
    """eGeMAPSv02 functionals (88 values): the extended Geneva minimalistic acoustic set."""

    name = "egemaps"
    description = "openSMILE eGeMAPSv02 functionals (88)"
    feature_set = "eGeMAPSv02"
    n_features = 88


@register
class ComParE(OpenSmileExtractor):
    """ComParE_2016 functionals (6,373 values): the large brute-force set."""

    name = "compare"
    description = "openSMILE ComParE_2016 functionals (6,373)"
    feature_set = "ComParE_2016"
    n_features = 6373


def free_instances() -> None:
    """Free this process's openSMILE instances (the next extraction sets them up again)."""
    while _INSTANCES:
        _, inst = _INSTANCES.popitem()
        inst.free()
