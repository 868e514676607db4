"""The consolidated feature matrix of a project: rows added incrementally, matched by clip id and
content, read lazily with its pages released; a round reuses it without touching audio or cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listenloop.features.cache import file_digest
from listenloop.features.matrix import FeatureMatrix, key_bytes, pool_features

DIM = 4


def keys(*names: str) -> np.ndarray:
    return key_bytes([f"{n:0>64}" for n in names])


def test_rows_are_added_located_and_replaced(tmp_path: Path) -> None:
    m = FeatureMatrix(tmp_path, "p", DIM, "tok")
    assert m.rows == 0 and (m.locate(np.array([1]), keys("a")) == -1).all()
    m.append(np.array([1, 2]), keys("a", "b"), np.arange(8, dtype=np.float32).reshape(2, DIM))
    again = FeatureMatrix(tmp_path, "p", DIM, "tok")  # read back from disk
    assert again.locate(np.array([2, 1, 3]), keys("b", "a", "c")).tolist() == [1, 0, -1]
    assert again.locate(np.array([1]), keys("e")).tolist() == [-1]  # other content: no row
    again.append(np.array([1]), keys("e"), np.full((1, DIM), 9, dtype=np.float32))
    assert again.locate(np.array([1, 2]), keys("e", "b")).tolist() == [2, 1]
    assert again.live == 2 and again.rows == 3
    np.testing.assert_array_equal(again.view(np.array([2, 1]))[0:2], [[9] * DIM, [4, 5, 6, 7]])


def test_another_extractor_or_width_starts_a_new_matrix(tmp_path: Path) -> None:
    FeatureMatrix(tmp_path, "p", DIM, "tok").append(np.array([1]), keys("a"), np.ones((1, DIM)))
    assert FeatureMatrix(tmp_path, "p", DIM, "other").rows == 0
    assert FeatureMatrix(tmp_path, "p", DIM + 1, "tok").rows == 0


def test_bytes_of_an_interrupted_append_are_overwritten(tmp_path: Path) -> None:
    m = FeatureMatrix(tmp_path, "p", DIM, "tok")
    m.append(np.array([1]), keys("a"), np.ones((1, DIM)))
    with open(m.data_path, "ab") as f:  # a crash after writing values, before the index
        f.write(np.full(DIM * 3, 7, dtype="<f4").tobytes())
    m = FeatureMatrix(tmp_path, "p", DIM, "tok")
    assert m.rows == 1
    m.append(np.array([2]), keys("b"), np.full((1, DIM), 2))
    assert m.data_path.stat().st_size == 2 * DIM * 4
    np.testing.assert_array_equal(m.view(np.array([0, 1]))[:], [[1] * DIM, [2] * DIM])


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_a_sweep_over_the_matrix_keeps_resident_memory_at_one_chunk(tmp_path: Path) -> None:
    """Reading every row of a 128 MB matrix leaves the process's mapped pages near one chunk."""
    dim, n = 1024, 32768  # 128 MiB of float32
    m = FeatureMatrix(tmp_path, "big", dim, "tok")
    step = 4096
    for s in range(0, n, step):
        ids = np.arange(s, s + step)
        m.append(ids, key_bytes([f"{i:064x}" for i in ids]), np.full((step, dim), s, dtype=np.float32))
    X = m.view(np.arange(n))
    before = _rss_file_kb()
    total = 0.0
    for s in range(0, n, 2048):  # 8 MiB per read
        total += float(X[np.arange(s, s + 2048)].sum())
    grew_mb = (_rss_file_kb() - before) / 1024
    assert total == pytest.approx(sum(float(s) * step * dim for s in range(0, n, step)))
    assert grew_mb < 32, f"mapped pages grew by {grew_mb:.0f} MB over a 128 MB sweep"


def test_a_round_reuses_the_matrix_without_audio_or_cache_files(tmp_path: Path, fsdd_dir: Path) -> None:
    """Second time round: no file is hashed or read and no cache entry opened (both are gone);
    a new clip is the only row computed; a clip whose content changed gets a new row."""
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str).head(12)
    root = tmp_path / "audio"
    shutil.copytree(fsdd_dir, root)
    paths = list(table["file"])
    ids = list(range(100, 112))
    digests = [file_digest(root / p) for p in paths]
    options = {"matrix_dir": tmp_path / "m", "name": "project-1", "cache_dir": tmp_path / "c"}
    first = pool_features(root, ids[:10], paths[:10], digests[:10], "mfcc", **options)
    assert (first.reused, first.computed, first.cached) == (0, 10, 0) and len(first.kept) == 10
    X_first = first.X[:]
    for p in paths[:10]:
        (root / p).unlink()
    shutil.rmtree(tmp_path / "c")
    second = pool_features(root, ids, paths, digests, "mfcc", **options)
    assert (second.reused, second.computed) == (10, 2) and len(second.kept) == 12
    np.testing.assert_array_equal(second.X[:10], X_first)
    assert len(list((tmp_path / "c").rglob("*.f32"))) == 2  # the new clips' entries, for other projects
    # clip 111 now holds clip 110's audio: a new row, with clip 110's values
    twice = [paths[10], paths[10]]
    changed = pool_features(root, ids[10:], twice, [digests[10], digests[10]], "mfcc", **options)
    assert (changed.reused, changed.cached) == (1, 1)
    np.testing.assert_array_equal(changed.X[1], changed.X[0])
    assert changed.matrix.rows == 13 and changed.matrix.live == 12


def test_a_new_feature_set_replaces_the_projects_old_matrix(tmp_path: Path, fsdd_dir: Path) -> None:
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str).head(3)
    paths, ids = list(table["file"]), [1, 2, 3]
    options = {"matrix_dir": tmp_path / "m", "cache_dir": tmp_path / "c"}
    pool_features(fsdd_dir, ids, paths, None, "mfcc", name="project-1", **options)
    pool_features(fsdd_dir, ids, paths, None, "mfcc", name="project-12", **options)  # another project
    old = {p.name for p in (tmp_path / "m").iterdir()}
    assert len(old) == 6  # data, index and description of each
    pool_features(fsdd_dir, ids, paths, None, "logmel", name="project-1", **options)
    now = {p.name for p in (tmp_path / "m").iterdir()}
    assert len(now) == 6 and {n for n in old if n.startswith("project-12-")} <= now
    assert not {n for n in old if n.startswith("project-1-")} & now
