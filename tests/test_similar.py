"""Search by example: the index (exact and IVF, kept next to the feature matrix, rebuilt when the
features change) and the API (a clip's neighbours, an uploaded clip's, 4xx for bad requests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import RECORDINGS, annotator, zip_of
from listenloop.audio.io import load_audio
from listenloop.engine import similar
from listenloop.engine.accounts import create_user, hash_password
from listenloop.features import search_index as si
from listenloop.features.matrix import FeatureMatrix, stored_name
from listenloop.features.registry import get_extractor
from listenloop.server import create_app


def clustered(n: int, dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` rows around `clusters` well separated centres (rows, each row's cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * 4
    which = rng.integers(clusters, size=n)
    return (centres[which] + rng.standard_normal((n, dim)).astype(np.float32)).astype(np.float32), which


def matrix_with(root: Path, name: str, X: np.ndarray, ids: np.ndarray) -> FeatureMatrix:
    m = FeatureMatrix(root, name, X.shape[1], "tok")
    m.append(ids, np.array([i.to_bytes(32, "little") for i in ids.tolist()], dtype="S32"), X)
    return m


def test_exact_and_ivf_indexes_find_the_true_neighbours(tmp_path: Path) -> None:
    X, _ = clustered(6000, 200, 40)  # 200 values: projected on 128 principal components
    ids = np.arange(1000, 7000, dtype=np.int64)
    m = matrix_with(tmp_path, "p", X, ids)
    exact = si.build_index(m)
    assert exact.kind == "exact" and exact.clips == 6000 and exact.components.shape == (200, 128)
    ivf = si.build_index(m, kind="ivf")
    assert ivf.kind == "ivf" and ivf.nprobe >= 1
    queries = np.random.default_rng(1).choice(6000, 300, replace=False)
    _, got_exact = exact.search(X[queries], 10)
    assert (got_exact[:, 0] == ids[queries]).all()  # each clip is its own nearest
    # exact is exact: numpy's brute force in the same space agrees
    Z, Q = exact.embed(X), exact.embed(X[queries])
    brute = np.argsort(((Q[:, None, :] - Z[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]
    assert (np.sort(ids[brute], axis=1) == np.sort(got_exact, axis=1)).mean() > 0.99
    _, got_ivf = ivf.search(X[queries], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got_ivf, got_exact, strict=True)])
    assert recall >= 0.9, recall
    # kept next to the matrix, and stale once the matrix gains rows
    ivf.save(tmp_path, "p")
    back = si.SearchIndex.load(tmp_path, "p")
    assert back is not None and back.kind == "ivf" and si.is_fresh(back, m)
    assert (back.search(X[queries[:5]], 10)[1] == got_ivf[:5]).all()
    more, _ = clustered(10, 200, 40, seed=2)
    m.append(np.arange(9000, 9010), np.array([b"k" * 32] * 10, dtype="S32"), more)
    assert not si.is_fresh(si.SearchIndex.load(tmp_path, "p"), m)
    assert si.refresh_index(tmp_path, "p") is True  # what the learning service runs after a round
    assert si.refresh_index(tmp_path, "p") is False  # nothing changed since
    fresh = si.SearchIndex.load(tmp_path, "p")
    assert fresh.clips == 6010 and fresh.kind == "exact" and si.is_fresh(fresh, m)
    assert fresh.search(more[:1], 1)[1][0, 0] == 9000


@pytest.fixture
def setup(tmp_path: Path):
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with TestClient(app) as c:
        tok = c.post("/api/v1/token", data={"username": "owner", "password": "owner-pass-1"}).json()
        h = {"Authorization": f"Bearer {tok['access_token']}"}
        body = {"name": "d", "task_type": "classification", "classes": list("0123456789")}
        body["feature_set"] = "mfcc"
        pid = c.post("/api/v1/projects", headers=h, json=body).json()["id"]
        files = {p.name: p.read_bytes() for p in sorted(RECORDINGS.glob("*.wav"))[:24]}
        r = c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"archive": ("a.zip", zip_of(files))})
        assert r.status_code == 201, r.text
        clips = c.get(f"/api/v1/projects/{pid}/clips?limit=100", headers=h).json()["clips"]
        yield c, h, pid, tmp_path / "data", {x["file"]: x["clip_id"] for x in clips}


def project_matrix(data: Path, pid: int) -> tuple[Path, str, str]:
    ext = get_extractor("mfcc")
    token = ext.cache_token()
    return data / similar.MATRICES, stored_name(f"project-{pid}", token), token


def test_a_clips_neighbours_and_an_uploaded_clips(setup) -> None:
    c, h, pid, data, ids = setup
    url = f"/api/v1/projects/{pid}/clips"
    first = next(iter(ids.values()))
    r = c.get(f"{url}/{first}/similar", headers=h)
    assert r.status_code == 409 and "features" in r.json()["detail"]  # before the first round
    # the project's features, as a learning round stores them: real MFCCs of every clip
    root, name, token = project_matrix(data, pid)
    ext = get_extractor("mfcc")
    names = sorted(ids)
    X = np.stack([ext.extract(*load_audio(RECORDINGS / n, ext.sample_rate)) for n in names])
    X = X.astype(np.float32)
    clip_ids = np.array([ids[n] for n in names], dtype=np.int64)
    m = FeatureMatrix(root, name, X.shape[1], token)
    m.append(clip_ids, np.array([b"x" * 32] * len(names), dtype="S32"), X)
    index = si.build_index(m)
    Z = index.embed(X)
    for pos in (0, 7, 19):
        r = c.get(f"{url}/{clip_ids[pos]}/similar?k=5", headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["index"] == {"kind": "exact", "clips": 24, "stale": False}
        got = [n["clip_id"] for n in body["neighbours"]]
        assert got[0] == clip_ids[pos] and body["neighbours"][0]["distance"] == pytest.approx(0, abs=1e-3)
        truth = clip_ids[np.argsort(((Z - Z[pos]) ** 2).sum(1))[:5]]
        assert got == truth.tolist()  # the true nearest, in order
        assert body["neighbours"][0]["file"] == names[pos] and body["neighbours"][0]["status"] == "queued"
    # the index was kept next to the matrix
    assert (root / f"{name}{si.INDEX_SUFFIX}").exists()
    # an uploaded clip: its features computed as the project's; itself in the pool comes first
    wav = (RECORDINGS / names[3]).read_bytes()
    r = c.post(f"/api/v1/projects/{pid}/similar?k=3", headers=h, files={"audio": ("x.wav", wav)})
    assert r.status_code == 200, r.text
    assert r.json()["neighbours"][0]["clip_id"] == clip_ids[3]
    assert len(r.json()["neighbours"]) == 3 and r.json()["clip_id"] is None
    # new features make the index stale: a small pool's is rebuilt on the spot
    m.append(np.array([clip_ids[0]]), np.array([b"y" * 32], dtype="S32"), X[5:6])
    r = c.get(f"{url}/{clip_ids[0]}/similar?k=2", headers=h)
    assert r.json()["index"]["stale"] is False
    assert {n["clip_id"] for n in r.json()["neighbours"]} == {clip_ids[0], clip_ids[5]}  # now alike


def test_bad_searches_get_4xx(setup) -> None:
    c, h, pid, data, ids = setup
    url = f"/api/v1/projects/{pid}/clips"
    some = next(iter(ids.values()))
    root, name, token = project_matrix(data, pid)
    m = FeatureMatrix(root, name, 273, token)
    m.append(np.array([some]), np.array([b"x" * 32], dtype="S32"), np.ones((1, 273), np.float32))
    other = c.post(
        "/api/v1/projects", headers=h, json={"name": "o", "task_type": "binary", "classes": ["a", "b"]}
    ).json()["id"]
    assert c.get(f"{url}/{some}/similar", headers=h).status_code == 200
    assert c.get(f"/api/v1/projects/{other}/clips/{some}/similar", headers=h).status_code == 404
    assert c.get(f"{url}/999999/similar", headers=h).status_code == 404
    assert c.get(f"{url}/0/similar", headers=h).status_code == 422
    assert c.get(f"{url}/abc/similar", headers=h).status_code == 422
    assert c.get(f"{url}/{some}/similar?k=0", headers=h).status_code == 422
    assert c.get(f"{url}/{some}/similar?k=101", headers=h).status_code == 422
    assert c.get(f"/api/v1/projects/999/clips/{some}/similar", headers=h).status_code == 404
    without = next(i for i in ids.values() if i != some)
    r = c.get(f"{url}/{without}/similar", headers=h)
    assert r.status_code == 409 and f"clip {without}" in r.json()["detail"]
    who = annotator(c, "ann")
    assert c.get(f"{url}/{some}/similar", headers=who).status_code == 403
    upload = f"/api/v1/projects/{pid}/similar"
    assert c.post(upload, headers=who, files={"audio": ("x.wav", b"RIFF")}).status_code == 403
    # a reviewer of the project may search (the clip browser is theirs too)
    rev = annotator(c, "rev")
    r = c.post(f"/api/v1/projects/{pid}/members", headers=h, json={"username": "rev", "role": "reviewer"})
    assert r.status_code in (200, 201), r.text
    assert c.get(f"{url}/{some}/similar", headers=rev).status_code == 200
    assert c.post(upload, headers=rev, files={"audio": ("x.txt", b"hi")}).status_code == 422  # past the gate
    r = c.post(upload, headers=h, files={"audio": ("x.txt", b"hello")})
    assert r.status_code == 422 and "audio file" in r.json()["detail"]
    r = c.post(upload, headers=h, files={"audio": ("x.wav", b"not a wav at all")})
    assert r.status_code == 422
    assert c.post(upload, headers=h).status_code == 422
