"""A project's labels as a Hugging Face `datasets` audio dataset on disk, with a dataset card.

`export_dataset` writes `Dataset.save_to_disk(DIR)` (reload it with `datasets.load_from_disk`)
and `DIR/README.md`. One row per clip with a final label (`engine.exports.final_label`: gold,
expert, seed, or the crowd's aggregate of a finished clip): `audio` (an `Audio` feature
made from the clip's stored file), `label` (a `ClassLabel` over the
project's classes; a list of them for multi-label projects), `clip_id`, `file` (the uploaded
name), `confidence` and `source`. Clips still being answered are left out, as are clips
whose final answer is "can't tell". `save_to_disk` copies the audio into the dataset, so the
folder stands alone.

`datasets` is heavy (pyarrow and its kin): it is the `interop` extra, and the export says so
when it is missing.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.engine.exports import final_label
from listenloop.engine.labels import TAG_SEP
from listenloop.errors import ListenloopError
from listenloop.store.models import Clip, Project

HF_TASKS = ("classification", "binary", *TAG_TASKS)
EXTRA = "interop"


def require_datasets() -> Any:
    """The `datasets` module, or a ListenloopError naming the extra that brings it."""
    try:
        import datasets
    except ImportError:
        raise ListenloopError(
            f"the Hugging Face export needs the `datasets` package: pip install 'listenloop[{EXTRA}]'"
        ) from None
    return datasets


def dataset_rows(session: Session, project: Project, data_dir: Path) -> list[dict[str, Any]]:
    """Per clip with a final label: audio path, label (class index, or indices), ids, confidence, source."""
    classes = [str(c) for c in project.classes or []]
    index = {c: i for i, c in enumerate(classes)}
    tags = project.task_type in TAG_TASKS
    rows = []
    query = (
        select(
            Clip.id,
            Clip.file_name,
            Clip.path,
            Clip.is_gold,
            Clip.gold_label,
            Clip.expert_label,
            Clip.seed_label,
            Clip.status,
            Clip.label,
            Clip.confidence,
        )
        .where(Clip.project_id == project.id)
        .order_by(Clip.id)
    )
    for clip in session.execute(query):
        final = final_label(clip)
        if final is None or final.label is None:
            continue
        if tags:
            parts = [t for t in final.label.split(TAG_SEP) if t]
            if any(t not in index for t in parts):
                continue
            label: Any = [index[t] for t in parts]
        elif final.label in index:
            label = index[final.label]
        else:  # "can't tell" won the clip: no class to give it
            continue
        rows.append(
            {
                "audio": str((data_dir / clip.path).resolve()),
                "label": label,
                "clip_id": clip.id,
                "file": clip.file_name,
                "confidence": final.confidence,
                "source": final.source,
            }
        )
    return rows


def export_dataset(
    session: Session,
    project: Project,
    data_dir: Path,
    out: Path,
    *,
    agreement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the dataset to `out` (save_to_disk) with its card; `{rows, out, classes}`."""
    if project.task_type not in HF_TASKS:
        raise InvalidError(
            f"project {project.id} is a {project.task_type} project: the audio dataset holds "
            f"{', '.join(HF_TASKS)} projects"
        )
    ds = require_datasets()
    rows = dataset_rows(session, project, data_dir)
    classes = [str(c) for c in project.classes or []]
    label_feature = ds.ClassLabel(names=classes)
    features = ds.Features(
        {
            "audio": ds.Audio(),
            "label": [label_feature] if project.task_type in TAG_TASKS else label_feature,
            "clip_id": ds.Value("int64"),
            "file": ds.Value("string"),
            "confidence": ds.Value("float64"),
            "source": ds.Value("string"),
        }
    )
    # the audio as a {bytes, path} struct cast to Audio: from_dict would encode each example with
    # Audio.encode_example, which imports torchcodec even for a path; save_to_disk reads the files
    # into the dataset (it then needs no data folder)
    plain = ds.Features({**features, "audio": {"bytes": ds.Value("binary"), "path": ds.Value("string")}})
    columns: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in features}
    columns["audio"] = [{"bytes": None, "path": r["audio"]} for r in rows]
    dataset = ds.Dataset.from_dict(columns, features=plain).cast_column("audio", ds.Audio())
    if out.exists():
        shutil.rmtree(out)
    dataset.save_to_disk(str(out))
    (out / "README.md").write_text(dataset_card(project, rows, classes, agreement=agreement))
    return {"rows": len(rows), "out": str(out), "classes": classes}


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def dataset_card(
    project: Project,
    rows: list[dict[str, Any]],
    classes: list[str],
    *,
    agreement: dict[str, Any] | None = None,
) -> str:
    """The dataset card (README.md): YAML metadata, then what the data is, how its labels were
    made, what they say per class, and what it must not be used for."""
    multi = project.task_type in TAG_TASKS
    counts = {c: 0 for c in classes}
    sources: dict[str, int] = {}
    for r in rows:
        for i in r["label"] if multi else [r["label"]]:
            counts[classes[i]] += 1
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    task = "multi-label audio classification" if multi else "audio classification"
    size = "n<1K" if len(rows) < 1000 else "1K<n<10K" if len(rows) < 10_000 else "10K<n<100K"
    lines = [
        "---",
        "task_categories:",
        "- audio-classification",
        "size_categories:",
        f"- {size}",
        "tags:",
        "- listenloop",
        "- crowdsourced",
        "---",
        "",
        f"# {project.name}",
        "",
        f"An {task} dataset of {len(rows)} clips labelled on listenloop (project {project.id}, "
        f"exported {datetime.now(UTC).date().isoformat()}).",
        "",
        "## Load it",
        "",
        "```python",
        "from datasets import load_from_disk",
        "ds = load_from_disk(PATH_OF_THIS_FOLDER)",
        "```",
        "",
        "Columns: `audio` (Audio), `label` ("
        + ("a list of ClassLabel" if multi else "ClassLabel")
        + "), `clip_id` (listenloop's clip id), `file` (the uploaded file name), `confidence`, `source`.",
        "",
        "The audio is stored in the dataset itself (each clip's file, as uploaded); decoding it "
        "needs `datasets`' audio extra (torchcodec), or read `audio['bytes']` with soundfile after "
        "`ds.cast_column('audio', Audio(decode=False))`.",
        "",
        "## How the labels were made",
        "",
        "Only clips with a final label are here. `source` says where each label comes from: "
        "`crowd` (the aggregate of annotators' answers, weighted by their trust and skill, once the "
        "redundancy policy stopped asking; `confidence` is the aggregate's posterior), `seed` (the "
        "owner's initial labels), `expert` (the owner's correction) or `gold` (a control question's "
        "known answer); the last three have confidence 1.",
        "",
        "| source | clips |",
        "|---|---|",
        *(f"| {s} | {n} |" for s, n in sorted(sources.items())),
        "",
        "| class | clips |",
        "|---|---|",
        *(f"| {c} | {n} |" for c, n in counts.items()),
        "",
    ]
    if agreement is not None:
        lines += [
            "## Agreement of the annotators",
            "",
            f"Krippendorff's alpha (nominal) {_num(agreement['alpha'])} over {agreement['items']} clips "
            f"with two answers or more; Fleiss' kappa {_num(agreement['kappa'])} over the first "
            f"{agreement['kappa_raters']} answers of {agreement['kappa_items']} clips.",
            "",
            "| class | answers | alpha | kappa |",
            "|---|---|---|---|",
            *(
                f"| {c['label']} | {c['answers']} | {_num(c['alpha'])} | {_num(c['kappa'])} |"
                for c in agreement["classes"]
            ),
            "",
        ]
    lines += [
        "## Limitations",
        "",
        "Crowd labels carry the crowd's errors: low-confidence clips (see `confidence`) are the "
        "likeliest to be wrong. The clips were chosen by active learning, not at random, so the "
        "class balance and difficulty here are not those of the pool they came from: do not use "
        "this dataset to estimate how often a class occurs, or as a test set for a model trained "
        "on the same pool.",
        "",
    ]
    return "\n".join(lines)
