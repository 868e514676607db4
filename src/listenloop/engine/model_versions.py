"""The model as a product: a project's model versions, their export with a model card, the test set.

Every learning round that fits a model keeps it as a version (`engine.learning.service`: its folder
under the data folder, configuration, training labels' snapshot id and scores on `model_runs`).
`export_version` writes one as a self-contained folder that `listenloop predict` reads:
the model files (`learners.model_files`), `model.json` (configuration, classes, scores),
`training_labels.csv` (the labels it was trained on, by file name) and `README.md`, the model
card. The test set is clips the owner holds out: never trained on, and the score each version
reports on them is what its exported copy reproduces (`listenloop predict`).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from listenloop import __version__
from listenloop.engine.accounts import Principal
from listenloop.engine.errors import InvalidError, NotFoundError
from listenloop.engine.learning.service import MODEL_FILES_KEPT, TEST_ARM
from listenloop.engine.projects import load_project, require_owner
from listenloop.store import model_versions as store
from listenloop.store.models import Event, ModelRun, Project

TRAINING_LABELS = "labels.csv"  # in a version's stored folder (`engine.learning.TRAINING_LABELS`)
EXPORTED_LABELS = "training_labels.csv"
MODEL_CARD = "README.md"
COPIED = ("model.skops", "model.pt", "standardise.npz")
MAX_TEST_CLIPS = 100_000


def describe_version(run: ModelRun) -> dict[str, Any]:
    """A version as the API lists it: number, when, configuration, labels and scores."""
    return {
        "version": run.version,
        "run": run.id,
        "created": run.created_at.isoformat(timespec="seconds") + "Z",
        "config": run.config,
        # the labels it trained on (the round's count also held the test clips' labels)
        "labels": (run.config or {}).get("training_labels", run.labels),
        "labels_snapshot": run.labels_snapshot,
        "scores": {
            "metric": run.metric,
            "cross_validated": run.score,
            "heldout": run.heldout_score,
            "heldout_size": run.heldout_size,
            "passive": run.passive_score,
            "passive_labels": run.passive_labels,
            "test": run.test_score,
            "test_size": run.test_size,
        },
        "downloadable": run.model_files is not None,
    }


def list_versions(session: Session, project_id: int, who: Principal) -> list[dict[str, Any]]:
    """The project's model versions, oldest first (owner)."""
    require_owner(load_project(session, project_id), who)
    return [describe_version(run) for run in store.versions(session, project_id)]


def find_version(session: Session, project_id: int, number: int | None) -> tuple[Project, ModelRun]:
    """The project and its version `number` (None: the newest) whose files are kept; NotFoundError
    with a plain reason otherwise."""
    project = load_project(session, project_id)
    run = store.version(session, project_id, number)
    if run is None:
        if number is None:
            raise NotFoundError(
                f"project {project_id} has no model version yet: a version is kept once every class has "
                "a label and a learning round has run"
            )
        raise NotFoundError(f"project {project_id} has no model version {number}")
    if run.model_files is None:
        raise NotFoundError(
            f"the files of version {run.version} of project {project_id} were retired "
            f"(only the newest {MODEL_FILES_KEPT} versions keep theirs); its scores remain listed"
        )
    return project, run


def export_version(
    session: Session, project_id: int, data_dir: Path, out: Path, number: int | None = None
) -> dict[str, Any]:
    """Write version `number` (None: the newest) of the project's model into the folder `out`
    (created; it must be empty if it exists). Returns the version's description."""
    project, run = find_version(session, project_id, number)
    source = Path(data_dir) / run.model_files  # type: ignore[operator]
    if not (source / "model.json").is_file():
        raise NotFoundError(
            f"the files of version {run.version} of project {project_id} are missing from {source}"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidError(f"{out} exists and is not an empty folder: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    meta = json.loads((source / "model.json").read_text())
    described = describe_version(run)
    meta |= {
        "project": {"id": project.id, "name": project.name, "task_type": project.task_type},
        "version": run.version,
        "created": described["created"],
        "labels": described["labels"],
        "scores": described["scores"],
        "exported_by": f"listenloop {__version__}",
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    per_class = _write_labels(session, project.id, source / TRAINING_LABELS, out / EXPORTED_LABELS)
    (out / MODEL_CARD).write_text(model_card(project, run, meta, per_class))
    return described


def _write_labels(session: Session, project_id: int, source: Path, dest: Path) -> Counter[str]:
    """The version's training labels by file name (`file,label,sha256`); their count per label."""
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    names = store.file_names(session, project_id, (int(r["clip_id"]) for r in rows))
    with open(dest, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "label", "sha256"])
        for r in rows:
            out.writerow(
                [names.get(int(r["clip_id"]), f"(deleted clip {r['clip_id']})"), r["label"], r["sha256"]]
            )
    return Counter(r["label"] for r in rows)


def _fmt(score: float | None) -> str:
    return "not measured" if score is None else f"{score:.3f}"


def model_card(project: Project, run: ModelRun, meta: dict[str, Any], per_class: Counter[str]) -> str:
    """The model card (README.md of an export): data, labels used, scores, intended use and limits."""
    config = run.config or {}
    scores = meta["scores"]
    metric = "UAR (unweighted average recall)" if run.metric == "uar" else "Pearson correlation"
    features = config.get("features", {})
    classes = config.get("classes") or []
    lines = [
        f"# Model card: {project.name} (project {project.id}), version {run.version}",
        "",
        f"Trained by listenloop's active-learning loop on {meta['created']} and exported with "
        f"{meta['exported_by']}. Label new audio with `listenloop predict THIS_FOLDER AUDIO... "
        "--out predictions.csv`.",
        "",
        "## Model",
        "",
        f"- Task: {project.task_type}"
        + (f" over {len(classes)} classes: {', '.join(map(str, classes))}" if classes else " (a rating)"),
        f"- Learner: {config.get('learner')} ({meta.get('estimator') or meta.get('kind')}), "
        f"stored as `{meta.get('file')}`"
        + (
            " (skops: loaded with an explicit list of trusted types, never unpickled)"
            if meta.get("kind") == "sklearn"
            else " (a torch state dict, loaded with weights_only)"
        ),
        f"- Features: `{config.get('feature_set')}` ({json.dumps(features.get('params', {}))}, feature code "
        f"version {features.get('version')}), standardised with the mean and std in `standardise.npz` "
        "(computed over the labelled and unlabelled clips of the training round)",
        f"- Query strategy of the round that trained it: {config.get('strategy')} "
        f"(round {config.get('iteration')})",
        "",
        "## Data and labels used",
        "",
        f"- The project's clips: {run.clips} when this version was trained ({run.skipped} gave no features).",
        f"- Training labels: {sum(per_class.values())} clips (listed in `{EXPORTED_LABELS}`), snapshot "
        f"id `{run.labels_snapshot}` (sha256 of the sorted audio-hash/label pairs: the same labelled "
        "audio gives the same id).",
        "- Where labels come from: the owner's seed labels and corrections, answers to control questions, "
        "and the aggregated crowd answer of clips the crowd finished with confidence (low-agreement clips "
        "are left out)."
        + (
            f" Self-training also fitted it on {run.pseudo_labels} pseudo-labelled clips."
            if run.pseudo_labels
            else ""
        ),
    ]
    if per_class:
        lines += ["", "| label | clips |", "|---|---|"] + [
            f"| {k} | {v} |" for k, v in sorted(per_class.items())
        ]
    lines += [
        "",
        "## Scores",
        "",
        f"Metric: {metric}.",
        "",
        f"- Cross-validated on its training labels: {_fmt(scores['cross_validated'])}",
        f"- On {scores['heldout_size'] or 0} held-out randomly chosen clips (fold by fold, each left out of "
        f"the fit): {_fmt(scores['heldout'])}; passive learning on {scores['passive_labels'] or 0} "
        f"random labels: {_fmt(scores['passive'])}",
        f"- This model on the project's {scores['test_size'] or 0} test clips (never trained on): "
        f"{_fmt(scores['test'])}",
        "",
        "The labels are crowd answers: where the crowd was wrong, the model learnt it and the scores above "
        "count it right. They were measured on this project's own clips and do not carry over to other "
        "recordings.",
        "",
        "## Intended use",
        "",
        "Labelling, or pre-sorting for people to check, more audio of the same kind as the project's clips: "
        "the same sources, recording conditions, clip length and classes.",
        "",
        "## Must not be used for",
        "",
        "- Audio unlike the project's clips (other devices, places, languages, species or lengths): it "
        'always answers one of its classes, and has no way to say "none of these".',
        "- Decisions about people (identifying, profiling or surveilling someone by their voice or sounds), "
        "or any medical, legal, safety or financial decision.",
        "- Ground truth for evaluating other models, or for scores to be reported without checking its "
        "predictions against labels made by people.",
        "",
        "## Files",
        "",
        "- `model.json`: configuration, classes, scores and this version's identity",
        f"- `{meta.get('file')}`, `standardise.npz`: the model and its feature standardisation",
        f"- `{EXPORTED_LABELS}`: the training labels (`file,label,sha256`)",
        "",
    ]
    return "\n".join(lines)


def set_test_clips(session: Session, project_id: int, who: Principal, clip_ids: list[int]) -> dict[str, Any]:
    """Make `clip_ids` the project's test set (owner): from the next round on they are neither
    trained on nor queued by the strategy, and each version is scored on those with a label.
    An empty list clears it. 422 for clips of other projects; logged as an event."""
    project = load_project(session, project_id)
    require_owner(project, who)
    ids = sorted({int(c) for c in clip_ids})
    if len(ids) > MAX_TEST_CLIPS:
        raise InvalidError(f"at most {MAX_TEST_CLIPS} test clips, not {len(ids)}")
    unknown = sorted(set(ids) - store.clip_ids_of(session, project_id, ids))
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise InvalidError(f"not clips of project {project_id}: {shown}")
    held = store.set_arm(session, project_id, ids, TEST_ARM)
    session.add(Event(project_id=project_id, user_id=who.id, kind="test_set", data={"clips": held}))
    return {"test_clips": held}


def test_clips(session: Session, project_id: int, who: Principal) -> dict[str, Any]:
    """The ids of the project's test clips (owner)."""
    require_owner(load_project(session, project_id), who)
    return {"clip_ids": list(store.arm_clips(session, project_id, TEST_ARM))}
