"""`listenloop labelstudio import` (a Label Studio export and a folder of audio into a project) and
`listenloop export hf` (its labels as a Hugging Face audio dataset that `load_from_disk` reads)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from listenloop.engine.accounts import Principal, create_user, hash_password
from listenloop.engine.config import ProjectConfig
from listenloop.engine.projects import create_project
from listenloop.store.database import Database
from listenloop.store.models import Clip

FIXTURES = Path(__file__).parent / "fixtures"
DIGITS = [str(i) for i in range(10)]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _setup(tmp_path: Path, task_type: str = "classification") -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    db = Database(url)
    db.upgrade()
    with db.write() as session:
        owner = create_user(session, "o", hash_password("owner-pass-1"), "owner")
        who = Principal(owner.id, "o", "owner")
        config = ProjectConfig(
            name="digits", task_type=task_type, classes=DIGITS, redundancy={"min": 2, "max": 3}
        )
        pid = create_project(session, who, config).id
    db.dispose()
    return url, pid


def test_labelstudio_import_from_a_folder_then_hf_export(tmp_path: Path) -> None:
    url, pid = _setup(tmp_path)
    audio = tmp_path / "audio" / "recordings"
    audio.mkdir(parents=True)
    for d in range(6):
        shutil.copy(FIXTURES / "fsdd" / "recordings" / f"{d}_jackson_0.wav", audio)
    data = tmp_path / "data"
    args = ["--project", str(pid), "--audio", str(tmp_path / "audio"), "--db", url, "--data", str(data)]
    task_file = str(FIXTURES / "labelstudio" / "digits-export.json")
    r = run_cli("labelstudio", "import", task_file, *args, "--report", "report.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported 6 of 6 tasks" in r.stdout and "11 answers (1 can't tell) from 3 annotators" in r.stdout
    assert json.loads((tmp_path / "report.json").read_text())["expert_labels"] == 1
    again = run_cli("labelstudio", "import", task_file, *args, cwd=tmp_path)  # the same files again
    assert again.returncode == 0 and "imported 0 of 6 tasks" in again.stdout
    assert "already in the project" in again.stdout
    bad = run_cli("labelstudio", "import", str(FIXTURES / "labelstudio" / "README.md"), *args, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: tasks: not Label Studio tasks")
    assert len(bad.stderr.strip().splitlines()) == 1

    # the labelled clips as a Hugging Face dataset
    datasets = pytest.importorskip("datasets", reason="the Hugging Face export is the interop extra")
    out = tmp_path / "hf"
    r = run_cli("export", "hf", str(pid), "--out", str(out), "--db", url, "--data", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ds = datasets.load_from_disk(str(out))
    db = Database(url)
    with db.read() as session:
        clips = {c.id: c for c in session.query(Clip).filter(Clip.project_id == pid)}
    db.dispose()
    finished = {i: c for i, c in clips.items() if c.status in ("done", "low_agreement")}
    assert sorted(ds["clip_id"]) == sorted(finished)
    label = ds.features["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == DIGITS
    assert isinstance(ds.features["audio"], datasets.Audio)
    for row_id, value, source in zip(ds["clip_id"], ds["label"], ds["source"], strict=True):
        clip = finished[row_id]
        assert label.int2str(value) == (clip.expert_label or clip.label)
        assert source == ("expert" if clip.expert_label else "crowd")
    raw = ds.cast_column("audio", datasets.Audio(decode=False))["audio"]  # stored in the dataset itself
    stored = {c.id: (data / c.path).read_bytes() for c in finished.values()}
    assert [a["bytes"] for a in raw] == [stored[i] for i in ds["clip_id"]]
    card = (out / "README.md").read_text()
    assert card.startswith("---\ntask_categories:") and "Krippendorff" in card and "load_from_disk" in card
    exists = run_cli(
        "export", "hf", str(pid), "--out", str(out), "--db", url, "--data", str(data), cwd=tmp_path
    )
    assert exists.returncode == 2 and "--force" in exists.stderr


def test_hf_export_multilabel_and_refusals(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the Hugging Face export is the interop extra")
    from listenloop.engine.hf_dataset import export_dataset

    url = f"sqlite:///{tmp_path / 'l.db'}"
    db = Database(url)
    db.upgrade()
    with db.write() as session:
        owner = create_user(session, "o", hash_password("owner-pass-1"), "owner")
        who = Principal(owner.id, "o", "owner")
        config = ProjectConfig(name="tags", task_type="multilabel", classes=["cough", "door", "speech"])
        project = create_project(session, who, config)
        (tmp_path / "audio").mkdir()
        for i, (label, status) in enumerate([("cough|speech", "done"), ("", "done"), ("door", "queued")]):
            shutil.copy(
                FIXTURES / "fsdd" / "recordings" / f"{i}_jackson_0.wav", tmp_path / "audio" / f"c{i}.wav"
            )
            session.add(
                Clip(project_id=project.id, file_name=f"c{i}.wav", sha256=f"{i:064d}", path=f"audio/c{i}.wav",
                     duration=1.0, sample_rate=16000, status=status, label=label, confidence=0.9)
            )  # fmt: skip
        session.flush()
        export_dataset(session, project, tmp_path, tmp_path / "out")
    ds = datasets.load_from_disk(str(tmp_path / "out"))
    names = ds.features["label"].feature.names
    assert [[names[i] for i in v] for v in ds["label"]] == [
        ["cough", "speech"],
        [],
    ]  # the queued clip is left out
    with db.write() as session:
        rating = create_project(session, who, ProjectConfig(name="r", task_type="continuous", range=(0, 1)))
        with pytest.raises(Exception, match="continuous"):
            export_dataset(session, rating, tmp_path, tmp_path / "out2")
    db.dispose()


def test_hf_export_names_the_extra_when_datasets_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from listenloop.engine.hf_dataset import require_datasets
    from listenloop.errors import ListenloopError

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(ListenloopError, match=r"pip install 'listenloop\[interop\]'"):
        require_datasets()
