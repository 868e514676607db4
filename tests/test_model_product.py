"""The model as a product: every round's model is kept as a version (configuration, labels
snapshot, scores), exported with a model card, and `listenloop predict` labels audio with it
exactly as the in-process model did; skops files with untrusted types are refused; the API lists
and downloads versions; the CLI fails clearly."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sqlalchemy import select

from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.errors import InvalidError, NotFoundError
from listenloop.engine.learning import round as learning_module
from listenloop.engine.learning import service as learning_service
from listenloop.engine.learning.service import LearningService
from listenloop.engine.model_versions import export_version, set_test_clips
from listenloop.engine.predictions import predict_files
from listenloop.engine.projects import create_project
from listenloop.engine.uploads import store_clips, unpack_archive
from listenloop.errors import ListenloopError
from listenloop.features import matrix as matrix_module
from listenloop.learners.model_files import TRUSTED_TYPES, load_model
from listenloop.rows import Standardised
from listenloop.store.database import Database
from listenloop.store.models import Clip, ModelRun

DIGITS = [str(d) for d in range(10)]
OWNER = Principal(1, "owner", "owner")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def new_project(db: Database, fsdd_dir: Path, data: Path, seeds_per_digit: int, test_per_digit: int) -> int:
    """The 100 fixture clips; `seeds_per_digit` of each digit labelled, the next `test_per_digit`
    of each digit labelled and held out as the test set."""
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    table["name"] = table["file"].map(lambda f: Path(f).name)
    zpath = data.parent / f"clips-{random.randrange(1 << 30)}.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in table["file"]:
            z.write(fsdd_dir / name, Path(name).name)
    labelled = table.groupby("label", group_keys=False).head(seeds_per_digit + test_per_digit)
    test = (
        labelled.groupby("label", group_keys=False).tail(test_per_digit) if test_per_digit else labelled[:0]
    )
    unpacked = unpack_archive(zpath, data.parent)
    try:
        with db.write() as s:
            body = {"name": "digits", "task_type": "classification", "classes": DIGITS}
            body |= {"feature_set": "mfcc", "learner": "logreg", "retrain_every": 10}
            project = create_project(s, OWNER, ProjectConfig(**body))
            labels = dict(zip(labelled["name"], labelled["label"], strict=True))
            assert (
                store_clips(s, project, unpacked, data, labels=labels, rng=random.Random(0))["added"] == 100
            )
            pid = project.id
        if test_per_digit:
            with db.write() as s:
                ids = s.scalars(
                    select(Clip.id).where(Clip.project_id == pid, Clip.file_name.in_(test["name"]))
                )
                assert set_test_clips(s, pid, OWNER, list(ids))["test_clips"] == len(test)
        return pid
    finally:
        unpacked.cleanup()


@pytest.fixture
def world(tmp_path: Path, fsdd_dir: Path) -> Iterator[tuple[Database, Path, LearningService]]:
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    with db.write() as s:
        create_user(s, "owner", "x", "owner")
    data = tmp_path / "data"
    data.mkdir()
    service = LearningService(db, data, inline=True)
    yield db, data, service
    service.stop()
    db.dispose()


def versions(db: Database, pid: int) -> list[ModelRun]:
    with db.read() as s:
        query = select(ModelRun).where(ModelRun.project_id == pid, ModelRun.version.is_not(None))
        return list(s.scalars(query.order_by(ModelRun.version)))


def test_export_and_predict_reproduce_the_in_process_model(
    world: tuple[Database, Path, LearningService],
    fsdd_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, data, service = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=4, test_per_digit=2)
    seen: dict[str, object] = {}
    rank, features = learning_module.retrain_and_rank, matrix_module.pool_features

    def keep_rank(*args: object, **kwargs: object):
        seen["result"] = rank(*args, **kwargs)
        return seen["result"]

    def keep_features(*args: object, **kwargs: object):
        seen["table"] = features(*args, **kwargs)
        return seen["table"]

    monkeypatch.setattr(learning_module, "retrain_and_rank", keep_rank)
    monkeypatch.setattr(matrix_module, "pool_features", keep_features)
    assert service.run_project(pid).state == "ran"
    (run,) = versions(db, pid)
    assert run.version == 1 and run.labels == 60 and run.model_files  # the round saw 60 labels ...
    assert run.config["training_labels"] == 40 and run.config["test_clips"] == 20  # ... 20 held out
    assert run.config["feature_set"] == "mfcc" and run.config["learner"] == "logreg"
    assert run.config["classes"] == DIGITS and run.config["features"]["name"] == "mfcc"
    assert len(run.labels_snapshot) == 64 and run.test_size == 20 and run.test_score is not None

    # the in-process model's predictions of the 20 test clips, from the round's own features
    inputs = service._read(pid)
    result, table = seen["result"], seen["table"]
    test_pos = [i for i, t in enumerate(inputs["held_out"]) if t]
    rows = np.searchsorted(table.kept, test_pos)
    assert (table.kept[rows] == test_pos).all()
    in_process = result.model.predict(Standardised(table.X, result.mean, result.std)[rows])
    truth = [inputs["labels"][i] for i in test_pos]
    assert balanced_accuracy_score(truth, in_process) == pytest.approx(run.test_score, abs=1e-12)
    # the test clips trained nothing: the snapshot is the 40 seed labels' alone
    stored = pd.read_csv(data / run.model_files / "labels.csv", dtype=str)
    assert len(stored) == 40 and not set(stored["clip_id"].astype(int)) & {
        inputs["clip_ids"][i] for i in test_pos
    }

    out = tmp_path / "export"
    with db.read() as s:
        assert export_version(s, pid, data, out)["version"] == 1
    assert {p.name for p in out.iterdir()} == {
        "model.json",
        "model.skops",
        "standardise.npz",
        "training_labels.csv",
        "README.md",
    }
    meta = json.loads((out / "model.json").read_text())
    assert meta["version"] == 1 and meta["scores"]["test"] == run.test_score and meta["classes"] == DIGITS
    card = (out / "README.md").read_text()
    for needed in ("## Data and labels used", "## Scores", "## Intended use", "## Must not be used for"):
        assert needed in card
    assert run.labels_snapshot in card
    exported = pd.read_csv(out / "training_labels.csv", dtype=str)
    assert len(exported) == 40 and exported["file"].str.endswith(".wav").all()

    # `listenloop predict` on the same clips, given as files and as a folder
    paths = [data / inputs["paths"][i] for i in test_pos]
    folder = tmp_path / "held"
    folder.mkdir()
    for i, p in zip(test_pos, paths, strict=True):
        (folder / f"clip{inputs['clip_ids'][i]}.wav").write_bytes(p.read_bytes())
    done = cli("predict", str(out), str(folder), "--out", str(tmp_path / "pred.csv"))
    assert done.returncode == 0, done.stderr
    rows_out = list(csv.DictReader(io.StringIO((tmp_path / "pred.csv").read_text())))
    assert list(rows_out[0]) == ["file", "label", "confidence"]
    by_name = {r["file"]: r for r in rows_out}  # relative to the folder given
    predicted = [by_name[f"clip{inputs['clip_ids'][i]}.wav"]["label"] for i in test_pos]
    assert predicted == [str(p) for p in in_process]
    assert all(0 < float(r["confidence"]) <= 1 for r in rows_out)
    assert balanced_accuracy_score(truth, predicted) == pytest.approx(run.test_score, abs=1e-12)
    files = predict_files(out, [str(p) for p in paths])
    assert [r[0] for r in files.rows] == [str(p) for p in paths]  # files as given
    assert [r[1] for r in files.rows] == predicted


def test_every_round_keeps_a_version_and_old_files_retire(
    world: tuple[Database, Path, LearningService],
    fsdd_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, data, service = world
    monkeypatch.setattr(learning_service, "MODEL_FILES_KEPT", 2)
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=3, test_per_digit=0)
    for _ in range(3):
        assert service.run_project(pid).state == "ran"
    runs = versions(db, pid)
    assert [r.version for r in runs] == [1, 2, 3]
    assert runs[0].model_files is None and runs[1].model_files and runs[2].model_files
    assert all(r.labels_snapshot == runs[0].labels_snapshot for r in runs)  # the same labels each time
    assert len(list((data / "models" / f"project-{pid}").iterdir())) == 2
    with db.read() as s, pytest.raises(NotFoundError, match="retired"):
        export_version(s, pid, data, tmp_path / "v1", 1)
    with db.read() as s, pytest.raises(NotFoundError, match="no model version 7"):
        export_version(s, pid, data, tmp_path / "v7", 7)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with db.read() as s, pytest.raises(InvalidError, match="not an empty folder"):
        export_version(s, pid, data, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_a_round_with_every_clip_labelled_still_keeps_a_version(
    world: tuple[Database, Path, LearningService], fsdd_dir: Path
) -> None:
    db, data, service = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=10, test_per_digit=0)  # no pool left
    assert service.run_project(pid).state == "ran"
    (run,) = versions(db, pid)
    assert run.labels == 100 and run.score is not None and run.config["training_labels"] == 100


def test_a_round_without_every_class_keeps_no_version(
    world: tuple[Database, Path, LearningService], fsdd_dir: Path, tmp_path: Path
) -> None:
    db, data, service = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=0, test_per_digit=0)
    assert service.run_project(pid).state == "ran"
    assert versions(db, pid) == []
    with db.read() as s, pytest.raises(NotFoundError, match="no model version yet"):
        export_version(s, pid, data, tmp_path / "none")


def test_test_clips_must_be_the_projects(
    world: tuple[Database, Path, LearningService], fsdd_dir: Path
) -> None:
    db, data, _ = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=1, test_per_digit=0)
    with db.write() as s, pytest.raises(InvalidError, match="not clips of project"):
        set_test_clips(s, pid, OWNER, [1, 999999])
    with db.write() as s, pytest.raises(NotFoundError):
        set_test_clips(s, 12345, OWNER, [1])


class Sneaky(ClassifierMixin, BaseEstimator):
    """A type skops does not know: loading it would run this module's code."""

    loaded = False

    def __setstate__(self, state: dict) -> None:
        Sneaky.loaded = True
        self.__dict__.update(state)


def test_skops_files_with_untrusted_types_are_refused(
    world: tuple[Database, Path, LearningService], fsdd_dir: Path, tmp_path: Path
) -> None:
    import skops.io as sio

    db, data, service = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=3, test_per_digit=0)
    service.run_project(pid)
    out = tmp_path / "export"
    with db.read() as s:
        export_version(s, pid, data, out)
    assert load_model(out).meta["kind"] == "sklearn"
    sneaky = Sneaky()
    sneaky.classes_ = np.array(DIGITS)
    sio.dump(sneaky, out / "model.skops")
    assert sio.get_untrusted_types(file=out / "model.skops") == [f"{__name__}.Sneaky"]
    with pytest.raises(ListenloopError, match=r"refused.*Sneaky"):
        load_model(out)
    assert not Sneaky.loaded
    assert f"{__name__}.Sneaky" not in TRUSTED_TYPES
    wav = next((fsdd_dir / "recordings").glob("*.wav"))
    done = cli("predict", str(out), str(wav), "--out", str(tmp_path / "p.csv"))
    assert done.returncode == 2 and "refused" in done.stderr and not (tmp_path / "p.csv").exists()


def test_cli_errors_are_clear(
    world: tuple[Database, Path, LearningService], fsdd_dir: Path, tmp_path: Path
) -> None:
    db, data, _ = world
    pid = new_project(db, fsdd_dir, data, seeds_per_digit=0, test_per_digit=0)
    url = str(db.engine.url)
    common = ["--db", url, "--data", str(data)]
    done = cli("model", "export", "999", "--out", str(tmp_path / "a"), *common)
    assert done.returncode == 2 and "project 999 does not exist" in done.stderr, done.stderr
    done = cli("model", "export", str(pid), "--out", str(tmp_path / "a"), *common)
    assert done.returncode == 2 and "no model version yet" in done.stderr, done.stderr
    done = cli(
        "model", "export", str(pid), "--out", str(tmp_path / "a"), "--db", f"sqlite:///{tmp_path}/nope.db"
    )
    assert done.returncode == 2 and "no such database file" in done.stderr
    assert not (tmp_path / "nope.db").exists()
    done = cli("predict", str(tmp_path), str(fsdd_dir), "--out", str(tmp_path / "p.csv"))
    assert done.returncode == 2 and "not a model folder" in done.stderr
    done = cli("predict", str(tmp_path), str(tmp_path / "missing.wav"))
    assert done.returncode == 2


# -- the API -------------------------------------------------------------------------------------


def test_api_lists_and_downloads_versions(client, fsdd_dir: Path, tmp_path: Path) -> None:
    from api_support import annotator, login

    owner = login(client, "owner", "owner-pass-1")
    r = client.post(
        "/api/v1/projects",
        headers=owner,
        json={
            "name": "d",
            "task_type": "classification",
            "classes": DIGITS,
            "feature_set": "mfcc",
            "learner": "logreg",
        },
    )
    pid = r.json()["id"]
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in table["file"]:
            z.write(fsdd_dir / name, Path(name).name)
    seeds = table.groupby("label").head(3)
    labels = "file,label\n" + "".join(
        f"{Path(f).name},{lab}\n" for f, lab in zip(seeds["file"], seeds["label"], strict=True)
    )
    r = client.post(
        f"/api/v1/projects/{pid}/clips",
        headers=owner,
        files={
            "archive": ("a.zip", buf.getvalue(), "application/zip"),
            "labels": ("l.csv", labels, "text/csv"),
        },
    )
    assert r.status_code == 201, r.text
    assert client.get(f"/api/v1/projects/{pid}/models", headers=owner).json() == []
    assert client.get(f"/api/v1/projects/{pid}/models/1/download", headers=owner).status_code == 404
    app = client.app
    clips = client.get(f"/api/v1/projects/{pid}/clips", headers=owner, params={"limit": 100}).json()["clips"]
    unlabelled = [c["clip_id"] for c in clips if c["label"] is None][:5]
    r = client.put(f"/api/v1/projects/{pid}/test-clips", headers=owner, json={"clip_ids": unlabelled})
    assert r.status_code == 200 and r.json() == {"test_clips": 5}
    assert sorted(
        client.get(f"/api/v1/projects/{pid}/test-clips", headers=owner).json()["clip_ids"]
    ) == sorted(unlabelled)
    LearningService(app.state.db, app.state.data_dir, inline=True).run_project(pid)

    listed = client.get(f"/api/v1/projects/{pid}/models", headers=owner)
    assert listed.status_code == 200
    (v,) = listed.json()
    assert v["version"] == 1 and v["labels"] == 30 and v["downloadable"] and v["created"].endswith("Z")
    assert v["config"]["learner"] == "logreg" and len(v["labels_snapshot"]) == 64
    assert v["scores"]["metric"] == "uar" and v["scores"]["test"] is None  # unlabelled test clips
    scores = client.get(f"/api/v1/projects/{pid}/status", headers=owner).json()["model_scores"]
    assert scores[-1]["version"] == 1 and scores[-1]["labels"] == 30
    r = client.get(f"/api/v1/projects/{pid}/models/1/download", headers=owner)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(folder)
    assert {"model.json", "model.skops", "README.md", "training_labels.csv"} <= {
        p.name for p in folder.iterdir()
    }
    wav = fsdd_dir / table["file"][0]
    assert predict_files(folder, [wav]).rows[0][1] in DIGITS

    # refusals: 404 unknown project or version, 422 bad ids and bodies, 403 others
    other = annotator(client, "ann1")
    owner2 = login(client, "owner2", "owner-pass-2")
    assert client.get("/api/v1/projects/999/models", headers=owner).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}/models/2/download", headers=owner).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}/models/0/download", headers=owner).status_code == 422
    assert client.get(f"/api/v1/projects/{pid}/models/x/download", headers=owner).status_code == 422
    assert client.get(f"/api/v1/projects/{pid}/models/{2**64}/download", headers=owner).status_code == 422
    assert client.get(f"/api/v1/projects/{pid}/models", headers=other).status_code == 403
    assert client.get(f"/api/v1/projects/{pid}/models", headers=owner2).status_code == 403
    assert client.get(f"/api/v1/projects/{pid}/models/1/download", headers=owner2).status_code == 403
    assert client.get(f"/api/v1/projects/{pid}/models").status_code == 401
    assert (
        client.put(
            f"/api/v1/projects/{pid}/test-clips", headers=owner, json={"clip_ids": [10**9]}
        ).status_code
        == 422
    )
    assert (
        client.put(f"/api/v1/projects/{pid}/test-clips", headers=owner, json={"ids": []}).status_code == 422
    )
    assert (
        client.put(f"/api/v1/projects/{pid}/test-clips", headers=owner, json={"clip_ids": ["a"]}).status_code
        == 422
    )
    assert (
        client.put(f"/api/v1/projects/{pid}/test-clips", headers=owner2, json={"clip_ids": []}).status_code
        == 403
    )


def test_mc_dropout_models_round_trip_as_state_dicts(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from listenloop.learners.mc_dropout import MCDropoutClassifier
    from listenloop.learners.model_files import save_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 20)
    X[y == "b"] += 2
    model = MCDropoutClassifier(steps=30, per_class_batch=8, masks=16).fit(X, y)
    mean, std = X.mean(axis=0).astype(np.float64), X.std(axis=0).astype(np.float64)
    save_model(tmp_path / "m", model, mean, std, {"task": "classification"})
    assert (tmp_path / "m" / "model.pt").is_file() and not (tmp_path / "m" / "model.skops").exists()
    loaded = load_model(tmp_path / "m")
    pred, conf = loaded.predict(X)
    Z = Standardised(X, mean, std)[np.arange(len(X))]
    assert (pred == model.predict(Z)).all()
    assert np.allclose(conf, model.predict_proba(Z).max(axis=1))
