"""`listenloop bench campaign --task multilabel|continuous`: a campaign through the HTTP API on
mixtures of DCASE office events, to measure dynamic redundancy beyond classes.

The clips are mixed from an event dataset (`file,label` with isolated events, e.g.
`../shared/data/dcase2016-office`) into a temporary folder:

- multilabel: each clip holds 1 to 3 events of different classes among `tags` classes (the
  first ones of the dataset in sorted order), each at an event-to-background ratio drawn in
  [0, 15] dB over pink noise, at a random onset; the truth is the set of their classes.
- continuous: `audio.ebr_dataset.make_ebr_dataset` (one event over pink noise at a ratio drawn
  in [-20, 20] dB); the truth is the ratio in dB, and the project's range is [-20, 20].

Simulated annotators (`skills`, as in the classification campaign): on a multi-label clip,
one of skill s answers the true set with probability s and otherwise the true set with one
tag wrong (a miss or a false alarm, drawn at random); on a rating, the truth plus Gaussian
noise of sd `RATING_NOISE_DB` x (1 - s), rounded to 0.1 and kept in the range. A skill of 0
is a spammer: a random tag set, or a rating drawn uniformly over the range. They cannot tell
control or repeated clips from the rest.

The owner uploads `seeds` seed labels and `gold` control questions (random clips) and runs
the project with the redundancy it is given (the default: dynamic, min 2, max 7, tau 0.95);
`redundancy={"min": 7, "max": 7, ...}` is the fixed-max baseline. The score compares the
exported labels of the crowd's clips with the truth: exact tag sets and per-tag accuracy, or
the mean absolute error of the ratings.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import random
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from listenloop.bench.campaign import annotate
from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, create_owner, token_of
from listenloop.errors import ListenloopError

TASKS = ("multilabel", "continuous")
RATING_RANGE = (-20.0, 20.0)
RATING_NOISE_DB = 20.0  # a rating's noise sd at skill 0 (skill 0.9: 2 dB, 0.6: 8 dB)
TAG_EBR_DB = (0.0, 15.0)
MAX_EVENTS = 3
SAMPLE_RATE = 16000
DURATION = 3.0


@dataclass
class TaskCampaignResult:
    """What a multi-label or rating campaign cost and what it gave."""

    task: str
    redundancy: dict[str, Any]
    rating_tolerance: float | None
    clips: int
    crowd_clips: int
    labelled: int
    low_agreement: int
    regular_answers: int
    answers_total: int
    answers_per_clip: float | None  # regular answers per crowd clip
    exact: float | None  # multilabel: share of labelled clips whose tag set is right
    tag_accuracy: float | None  # multilabel: share of (clip, tag) decisions that are right
    mae: float | None  # continuous: mean absolute error of the labels, dB
    mae_final_trust: float | None  # continuous: the same answers re-weighted by the trust at the end
    seconds: float
    worst: list[dict[str, Any]] = field(default_factory=list)  # the wrongest clips, with their answers
    annotators: list[dict[str, Any]] = field(default_factory=list)  # skill, trust, answers


def _load_events(source: Path, classes: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Decoded, trimmed events of `classes` from `source/labels.csv` (file,label)."""
    from listenloop.audio.io import load_audio
    from listenloop.audio.mixing import trim_silence

    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    out: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for f, label in zip(table["file"], table["label"], strict=True):
        if label in out:
            signal, _ = load_audio(source / f, SAMPLE_RATE)
            out[label].append(trim_silence(signal, -60.0, frame=SAMPLE_RATE // 100))
    return out


def mix_tag_clips(source: Path, out: Path, clips: int, tags: int, seed: int) -> dict[str, str]:
    """Write `clips` multi-label mixtures (see the module docstring) into `out`; name -> "a|b"."""
    from listenloop.audio.mixing import coloured_noise, db_to_gain, mix_event, prevent_clipping

    table = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    classes = sorted(set(table["label"]) - {""})[:tags]
    if len(classes) < 2:
        raise ListenloopError(f"{source}/labels.csv: needs at least 2 classes for tags")
    events = _load_events(source, classes)
    length = round(DURATION * SAMPLE_RATE)
    truth: dict[str, str] = {}
    out.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        rng = np.random.default_rng([seed, i])
        present = sorted(rng.choice(classes, size=int(rng.integers(1, MAX_EVENTS + 1)), replace=False))
        background = coloured_noise(length, "pink", rng) * np.float32(db_to_gain(rng.uniform(-40, -25)))
        mixture = background.copy()
        for tag in present:
            bank = events[str(tag)]
            event = bank[int(rng.integers(len(bank)))][:length]
            onset = int(rng.integers(length - len(event) + 1))
            added, _ = mix_event(background, event, onset, float(rng.uniform(*TAG_EBR_DB)))
            mixture += added - background
        pcm = np.round(np.clip(prevent_clipping(mixture), -1.0, 1.0) * 32767.0).astype(np.int16)
        name = f"tags{i:05d}.wav"
        sf.write(out / name, pcm, SAMPLE_RATE, subtype="PCM_16")
        truth[name] = "|".join(str(t) for t in present)
    return truth


def mix_rating_clips(source: Path, out: Path, clips: int, seed: int) -> dict[str, str]:
    """`clips` event-over-noise mixtures at a random ratio in `RATING_RANGE`; name -> ratio (dB)."""
    from listenloop.audio.ebr_dataset import make_ebr_dataset

    summary = make_ebr_dataset(
        source, out, clips=clips, ebr_range=RATING_RANGE, background="pink", seed=seed, duration=DURATION
    )
    return {Path(row["file"]).name: row["ebr"] for row in summary.rows}


def simulated_answer(task: str, truth: str, skill: float, classes: Sequence[str], rng: random.Random) -> str:
    """One simulated annotator's answer to a clip whose true label is `truth`."""
    if task == "continuous":
        lo, hi = RATING_RANGE
        if skill <= 0:
            value = rng.uniform(lo, hi)
        else:
            value = float(truth) + rng.gauss(0.0, RATING_NOISE_DB * (1.0 - skill))
        return f"{min(max(value, lo), hi):.1f}"
    present = set(truth.split("|")) - {""}
    if skill <= 0:
        present = {c for c in classes if rng.random() < 0.5}
    elif rng.random() >= skill:
        present ^= {rng.choice(list(classes))}
    return "|".join(c for c in classes if c in present)


def _csv(c: Any, headers: dict[str, str], path: str, **params: str) -> list[dict[str, str]]:
    r = c.get(path, params=params, headers=headers)
    r.raise_for_status()
    return list(csv.DictReader(io.StringIO(r.text)))


def score(
    task: str, rows: list[dict[str, str]], truth: dict[str, str], classes: Sequence[str]
) -> dict[str, Any]:
    """Exact-set and per-tag accuracy, or MAE, of the crowd's labelled clips in an export."""
    crowd = [r for r in rows if r["source"] in ("crowd", "", None)]  # finished or not
    labelled = [r for r in crowd if r["final"] == "true" and r["label"] not in ("", None)]
    out: dict[str, Any] = {"exact": None, "tag_accuracy": None, "mae": None}
    if task == "continuous":
        errors = [abs(float(r["label"]) - float(truth[r["file"]])) for r in labelled]
        out["mae"] = round(float(np.mean(errors)), 4) if errors else None
    else:
        # multi-label: an empty label is a decision too ("nothing present")
        labelled = [r for r in crowd if r["final"] == "true"]
        sets = [(set(r["label"].split("|")) - {""}, set(truth[r["file"]].split("|"))) for r in labelled]
        if sets:
            out["exact"] = round(sum(a == b for a, b in sets) / len(sets), 4)
            out["tag_accuracy"] = round(
                sum((c in a) == (c in b) for a, b in sets for c in classes) / (len(sets) * len(classes)), 4
            )
    regular = sum(int(r["answers"] or 0) for r in crowd)
    out.update(
        crowd_clips=len(crowd),
        labelled=len(labelled),
        low_agreement=sum(r["status"] == "low_agreement" for r in crowd),
        regular_answers=regular,
        answers_per_clip=round(regular / len(crowd), 3) if crowd else None,
    )
    return out


def worst_clips(
    task: str, rows: list[dict[str, str]], truth: dict[str, str], answers: list[dict[str, str]], n: int = 10
) -> list[dict[str, Any]]:
    """The `n` crowd clips furthest from the truth (wrong tag sets, largest rating errors), each
    with its status and regular answers in order: what to look at when a figure disappoints."""
    by_clip: dict[str, list[str]] = {}
    for a in answers:
        if a["kind"] == "regular":
            by_clip.setdefault(a["clip_id"], []).append(a["answer"])
    done = [r for r in rows if r["source"] == "crowd" and r["final"] == "true"]

    def error(r: dict[str, str]) -> float:
        if task == "continuous":
            return abs(float(r["label"]) - float(truth[r["file"]])) if r["label"] else float("inf")
        return float(len((set(r["label"].split("|")) - {""}) ^ set(truth[r["file"]].split("|"))))

    ranked = sorted(done, key=error, reverse=True)[:n]
    return [
        {"file": r["file"], "label": r["label"], "truth": truth[r["file"]], "status": r["status"],
         "answers": by_clip.get(r["clip_id"], [])}
        for r in ranked
        if error(r) > 0
    ]  # fmt: skip


def mae_at_final_trust(
    rows: list[dict[str, str]],
    truth: dict[str, str],
    answers: list[dict[str, str]],
    people: list[dict[str, str]],
) -> float | None:
    """MAE of the finished crowd clips' ratings re-weighted with each annotator's trust at the
    end of the campaign (a diagnostic: the exported label is the mean with the trust of the
    moment the clip closed)."""
    trust = {p["annotator"]: max(float(p["trust"]), 1e-6) for p in people}
    by_clip: dict[str, list[tuple[float, float]]] = {}
    for a in answers:
        if a["kind"] == "regular" and a["answer"] != "can't tell":
            by_clip.setdefault(a["clip_id"], []).append((float(a["answer"]), trust.get(a["annotator"], 0.5)))
    errors = []
    for r in rows:
        pairs = by_clip.get(r["clip_id"])
        if r["source"] == "crowd" and r["final"] == "true" and pairs:
            values, weights = zip(*pairs, strict=True)
            errors.append(abs(float(np.average(values, weights=weights)) - float(truth[r["file"]])))
    return round(float(np.mean(errors)), 4) if errors else None


def run_task_campaign(
    task: str,
    source: Path,
    *,
    clips: int = 200,
    tags: int = 5,
    skills: Sequence[float],
    seeds: int = 10,
    gold: int = 10,
    redundancy: dict[str, Any] | None = None,
    rating_tolerance: float | None = None,
    feature_set: str = "mfcc",
    retrain_every: int = 20,
    max_seconds: float = 900.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> TaskCampaignResult:
    """Mix the clips, run one campaign on them through a fresh server and score the export."""
    import httpx

    if task not in TASKS:
        raise ListenloopError(f"--task {task!r}: use classification, {' or '.join(TASKS)}")
    say = progress or (lambda _line: None)
    rng = random.Random(seed)
    redundancy = redundancy or {"min": 2, "max": 7, "tau": 0.95}
    with tempfile.TemporaryDirectory(prefix="listenloop-bench-tasks-") as tmp:
        mixes = Path(tmp) / "mixes"
        if task == "multilabel":
            truth = mix_tag_clips(Path(source), mixes, clips, tags, seed)
            classes = sorted({t for v in truth.values() for t in v.split("|")})
            clip_dir = mixes
        else:
            truth = mix_rating_clips(Path(source), mixes, clips, seed)
            classes = []
            clip_dir = mixes / "clips"
        say(f"{len(truth)} {task} clips mixed from {source}")
        names = sorted(truth)
        picked = rng.sample(names, seeds + gold)
        seed_labels = {n: truth[n] for n in picked[:seeds]}
        gold_labels = {n: truth[n] for n in picked[seeds:]}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n in names:
                z.write(clip_dir / n, n)
        data = Path(tmp) / "data"
        data.mkdir()
        url = f"sqlite:///{data / 'listenloop.db'}"
        create_owner(url)
        server = Server(url, data, 1, Path(tmp) / "server.log")
        t0 = time.monotonic()
        try:
            server.wait()
            with httpx.Client(base_url=server.base, timeout=300) as c:
                oh = {"Authorization": f"Bearer {token_of(c, OWNER, OWNER_PASSWORD)}"}
                body: dict[str, Any] = {
                    "name": f"campaign-{task}",
                    "task_type": task,
                    "feature_set": feature_set,
                    "retrain_every": retrain_every,
                    "redundancy": redundancy,
                }
                if task == "continuous":
                    body.update(range=list(RATING_RANGE), rating_tolerance=rating_tolerance)
                else:
                    body["classes"] = classes
                r = c.post("/api/v1/projects", headers=oh, json=body)
                if r.status_code != 201:
                    raise ListenloopError(f"project refused: {r.text}")
                pid = r.json()["id"]
                seeds_csv = "file,label\n" + "".join(f"{n},{v}\n" for n, v in seed_labels.items())
                c.post(
                    f"/api/v1/projects/{pid}/clips",
                    headers=oh,
                    files={
                        "archive": ("clips.zip", buf.getvalue(), "application/zip"),
                        "labels": ("labels.csv", seeds_csv.encode(), "text/csv"),
                    },
                ).raise_for_status()
                gold_csv = "file,label\n" + "".join(f"{n},{v}\n" for n, v in gold_labels.items())
                c.post(
                    f"/api/v1/projects/{pid}/gold",
                    headers=oh,
                    files={"file": ("gold.csv", gold_csv.encode(), "text/csv")},
                ).raise_for_status()
                export = f"/api/v1/projects/{pid}/export"
                clip_truth = {
                    hashlib.sha256((clip_dir / n).read_bytes()).hexdigest(): truth[n] for n in names
                }
                tokens, names_of = [], []
                for k in range(len(skills)):
                    user, pw = f"sim{k}_{rng.randrange(1 << 30)}", f"pw-{rng.randrange(1 << 40)}"
                    c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
                    tokens.append(token_of(c, user, pw))
                    names_of.append(user)
                say(f"{len(skills)} annotators of skill {', '.join(f'{s:g}' for s in skills)} at work ...")
                asyncio.run(
                    annotate(
                        server.base,
                        pid,
                        tokens,
                        skills,
                        clip_truth,
                        lambda truth, skill, rng: simulated_answer(task, truth, skill, classes, rng),
                        time.monotonic() + max_seconds,
                        seed,
                        strict=True,
                    )
                )
                rows = _csv(c, oh, export, format="csv")
                answers = _csv(c, oh, f"/api/v1/projects/{pid}/answers", format="csv")
                people = _csv(c, oh, export, format="csv", table="annotators")
        finally:
            server.stop()
    scored = score(task, rows, truth, classes)
    scored["worst"] = worst_clips(task, rows, truth, answers)
    scored["mae_final_trust"] = (
        mae_at_final_trust(rows, truth, answers, people) if task == "continuous" else None
    )
    skill_of = {name: s for name, s in zip(names_of, skills, strict=True)}
    scored["annotators"] = [
        {"skill": skill_of.get(p["annotator"]), "trust": float(p["trust"]), "answers": int(p["answers"]),
         "checked": int(p["checked"]), "passed": int(p["passed"])}
        for p in people
    ]  # fmt: skip
    return TaskCampaignResult(
        task=task,
        redundancy=redundancy,
        rating_tolerance=rating_tolerance,
        clips=len(rows),
        answers_total=len(answers),
        seconds=round(time.monotonic() - t0, 1),
        **scored,
    )


def format_task_result(r: TaskCampaignResult) -> str:
    """One paragraph: answers per clip and accuracy (or MAE)."""
    red = r.redundancy
    quality = (
        f"MAE {r.mae} dB ({r.mae_final_trust} with the final trust)"
        if r.task == "continuous"
        else f"exact tag sets {r.exact}, per-tag accuracy {r.tag_accuracy}"
    )
    tol = f", tolerance {r.rating_tolerance:g}" if r.rating_tolerance is not None else ""
    return (
        f"{r.task}, redundancy min {red.get('min')} max {red.get('max')} tau {red.get('tau')}{tol}: "
        f"{r.labelled} of {r.crowd_clips} crowd clips labelled, {quality}, {r.low_agreement} low-agreement; "
        f"{r.regular_answers} regular answers ({r.answers_per_clip} per clip); "
        f"{r.answers_total} answers of every kind; {r.seconds} s"
    )
