"""Feature extractors, the checked cache, and dataset extraction (in process and on Dask)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from listenloop.audio.io import load_audio
from listenloop.datasets import load_dataset
from listenloop.errors import ListenloopError
from listenloop.features import EXTRACTORS, get_extractor
from listenloop.features.cache import (
    CACHE_ENV,
    FeatureCache,
    decode_entry,
    default_cache_dir,
    encode_entry,
    file_digest,
)
from listenloop.features.extraction import extract_features, files_dataset
from listenloop.features.spectral import mel_filterbank

CLIP = "recordings/0_george_0.wav"
# pann needs the user's CNN14 checkpoint (nothing is downloaded): tests/test_pann.py writes one
BUILT_IN = sorted(name for name in EXTRACTORS if name != "pann")


@pytest.fixture
def small(fsdd_dir: Path):
    """12 FSDD clips: enough for the cache tests, quick with openSMILE."""
    ds = load_dataset(fsdd_dir, group_column="speaker")
    return ds.subset(np.arange(0, 100, 9)[:12])


@pytest.mark.parametrize("name", BUILT_IN)
def test_extractor_shape_dtype_finite(name: str, fsdd_dir: Path, office_dir: Path) -> None:
    ext = get_extractor(name)
    for path in (fsdd_dir / CLIP, office_dir / "events" / "cough004.wav"):
        signal, sr = load_audio(path, ext.sample_rate)
        vec = ext.extract(signal, sr)
        assert vec.dtype == np.float32 and vec.ndim == 1
        assert vec.shape == (ext.dim,)
        assert np.all(np.isfinite(vec))
    assert len(ext.names) == ext.dim


def test_opensmile_dims() -> None:
    assert get_extractor("egemaps").dim == 88
    assert get_extractor("compare").dim == 6373


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("n", [0, 1, 37, 300])
def test_short_signals_are_padded_not_crashing(name: str, n: int) -> None:
    ext = get_extractor(name)
    sr = ext.sample_rate or 8000
    signal = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    vec = ext.extract(signal, sr)
    assert vec.shape == (ext.dim,) and np.all(np.isfinite(vec))


def test_egemaps_equals_opensmile_process_file(fsdd_dir: Path) -> None:
    opensmile = pytest.importorskip("opensmile")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02)
    ref = smile.process_file(str(fsdd_dir / CLIP)).to_numpy(dtype=np.float32)[0]
    signal, sr = load_audio(fsdd_dir / CLIP)
    ext = get_extractor("egemaps")
    for _ in range(2):  # the reused openSMILE instance gives the same values again
        np.testing.assert_array_equal(ext.extract(signal, sr), ref)


def test_unknown_extractor_and_parameter() -> None:
    with pytest.raises(ListenloopError, match="known: compare, egemaps, logmel, mfcc"):
        get_extractor("wav2vec")
    with pytest.raises(ListenloopError, match="unknown parameter n_bogus"):
        get_extractor("mfcc", n_bogus=3)


def test_mel_filterbank_has_no_empty_band() -> None:
    fb = mel_filterbank(64, 512, 8000)
    assert fb.shape == (64, 257)
    assert np.all(fb.max(axis=1) > 0)


def test_params_change_the_cache_key(tmp_path: Path, fsdd_dir: Path) -> None:
    cache = FeatureCache(tmp_path)
    digest = file_digest(fsdd_dir / CLIP)
    keys = {
        cache.key(digest, get_extractor("mfcc")),
        cache.key(digest, get_extractor("mfcc", n_mels=40)),
        cache.key(digest, get_extractor("mfcc", sample_rate=8000)),
        cache.key(digest, get_extractor("logmel")),
    }
    assert len(keys) == 4
    assert cache.key(digest, get_extractor("mfcc")) == cache.key(digest, get_extractor("mfcc", n_mfcc=13))
    key = cache.key(digest, get_extractor("mfcc"))
    assert cache.path(key).parent.name == key[:2]


def test_cache_entry_checks() -> None:
    vec = np.arange(10, dtype=np.float32)
    data = encode_entry(vec)
    np.testing.assert_array_equal(decode_entry(data, 10), vec)
    assert decode_entry(data, 11) is None  # wrong length for the extractor
    assert decode_entry(data[:-4]) is None  # truncated
    assert decode_entry(data[:20]) is None
    assert decode_entry(b"") is None
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    assert decode_entry(bytes(flipped)) is None  # payload changed, checksum does not match
    assert decode_entry(b"x" * len(data)) is None  # garbage


def test_default_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == Path.home() / ".cache" / "listenloop" / "features"


@pytest.mark.parametrize("name", ["egemaps", "mfcc"])
def test_second_extraction_reads_the_cache(name: str, small, tmp_path: Path) -> None:
    first = extract_features(small, name, workers=1, cache_dir=tmp_path, progress=False)
    assert (first.cached, first.computed, len(first.skipped)) == (0, len(small), 0)
    assert first.X.dtype == np.float32 and first.X.shape == (len(small), get_extractor(name).dim)
    second = extract_features(small, name, workers=1, cache_dir=tmp_path, progress=False)
    assert (second.cached, second.computed) == (len(small), 0)
    np.testing.assert_array_equal(second.X, first.X)
    assert second.files == small.files


def test_damaged_entries_are_detected_and_recomputed(small, tmp_path: Path) -> None:
    first = extract_features(small, "mfcc", workers=1, cache_dir=tmp_path, progress=False)
    entries = sorted(tmp_path.glob("??/*.f32"))
    assert len(entries) == len(small)
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[: len(data) // 2])  # truncated
    entries[1].write_bytes(b"\0" * len(data))  # overwritten, same size
    flipped = bytearray(entries[2].read_bytes())
    flipped[-3] ^= 0xFF  # one value changed in place
    entries[2].write_bytes(bytes(flipped))
    entries[3].write_bytes(encode_entry(np.zeros(5, np.float32)))  # valid entry, wrong length
    again = extract_features(small, "mfcc", workers=1, cache_dir=tmp_path, progress=False)
    assert (again.cached, again.computed) == (len(small) - 4, 4)
    np.testing.assert_array_equal(again.X, first.X)
    healed = extract_features(small, "mfcc", workers=1, cache_dir=tmp_path, progress=False)
    assert healed.cached == len(small)


def test_no_cache_writes_nothing(small, tmp_path: Path) -> None:
    table = extract_features(small, "logmel", workers=1, cache_dir=tmp_path, use_cache=False, progress=False)
    assert table.computed == len(small)
    assert not list(tmp_path.rglob("*.f32"))


def test_bad_files_are_reported_and_skipped(bad_dir: Path, tmp_path: Path, capsys) -> None:
    ds = files_dataset(bad_dir)
    table = extract_features(ds, "mfcc", workers=1, cache_dir=tmp_path, progress=False)
    assert table.kept.tolist() == [0, 5]
    assert table.files == ["0_george_0.wav", "1_theo_0.wav"]
    reasons = dict(table.skipped)
    assert set(reasons) == {"empty.wav", "notaudio.wav", "truncated.wav", "missing.wav"}
    assert reasons["missing.wav"] == "no such file"
    assert "0 samples" in reasons["truncated.wav"]
    assert "not readable as audio" in reasons["notaudio.wav"]
    err = capsys.readouterr().err
    for name, reason in reasons.items():
        assert f"skipped {name}: {reason}" in err
    assert "4 files skipped" in err
    assert table.X.shape == (2, get_extractor("mfcc").dim)


def test_large_tables_are_memory_mapped(bad_dir: Path, tmp_path: Path) -> None:
    ds = files_dataset(bad_dir)
    in_ram = extract_features(ds, "mfcc", workers=1, cache_dir=tmp_path, progress=False, log=lambda m: None)
    mapped = extract_features(
        ds, "mfcc", workers=1, cache_dir=tmp_path, progress=False, memmap_min_bytes=0, log=lambda m: None
    )
    assert isinstance(mapped.X, np.memmap) and mapped.X.dtype == np.float32
    assert Path(mapped.X.filename).parent == tmp_path / "tables"
    np.testing.assert_array_equal(mapped.X, in_ram.X)
    assert not list((tmp_path / "tables").glob(".table.*"))  # no temporary left behind


def test_dask_workers_match_in_process(small, tmp_path: Path) -> None:
    local = extract_features(small, "mfcc", workers=1, use_cache=False, progress=False)
    distributed = extract_features(
        small, "mfcc", workers=2, chunk_size=3, cache_dir=tmp_path, use_cache=True, progress=False
    )
    np.testing.assert_array_equal(distributed.X, local.X)
    assert distributed.computed == len(small)
    assert len(list(tmp_path.glob("??/*.f32"))) == len(small)  # results cached as they came
    assert not multiprocessing.active_children()  # the cluster's processes are gone
