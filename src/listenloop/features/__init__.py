"""Audio features: extractors (openSMILE sets, log-mel, MFCC), a checked cache, and extraction."""

from listenloop.features import opensmile_sets as _opensmile_sets  # noqa: F401  (registers)
from listenloop.features import pann as _pann  # noqa: F401  (registers; torch only when used)
from listenloop.features import spectral as _spectral  # noqa: F401  (registers)
from listenloop.features.cache import FeatureCache, default_cache_dir
from listenloop.features.extraction import FeatureTable, extract_features, files_dataset
from listenloop.features.registry import EXTRACTORS, FEATURE_VERSION, Extractor, get_extractor

__all__ = [
    "EXTRACTORS",
    "FEATURE_VERSION",
    "Extractor",
    "FeatureCache",
    "FeatureTable",
    "default_cache_dir",
    "extract_features",
    "files_dataset",
    "get_extractor",
]
