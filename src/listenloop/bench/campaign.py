"""`listenloop bench campaign`: a whole labelling campaign through the HTTP API, with simulated annotators.

Protocol: a fresh server on loopback (as `bench serve`), one classification project over a
labelled folder of clips (`labels.csv` with file,label; with `positive`, a binary project of
those classes ("1") against the rest ("0"), as `--positive` in `simulate`), a seed set of `seeds` clips per
class and `gold` control questions per class uploaded by the owner, then annotators of
mixed skill answer through `next` / `answer` (pausing `think` seconds after each) until
the server has nothing left for them (or the time limit). Annotator j answers the clip's
true class with probability `skills[j]` and otherwise a uniformly random other class; a
skill of 0 is a spammer who answers uniformly at random. They cannot tell control or
repeated clips from the rest: like a person, an annotator knows a clip only by what it hears
(`next` names no clip), so each one fetches the task's audio and looks its content up. At
the end the owner's export is compared with the truth: accuracy of the crowd labels, regular
answers per crowd-labelled clip against a fixed 5 (overall and over the first `EARLY_CLIPS`
clips the crowd finished), and the model score history from `status`.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, create_owner, token_of
from listenloop.errors import ListenloopError

DEFAULT_SKILLS = (0.95, 0.9, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.0)
FIXED_ANSWERS = 5  # the baseline a campaign is compared with: every clip answered 5 times
EARLY_CLIPS = 50  # answers per clip over the first clips finished: what the crowd costs before any fit


@dataclass
class CampaignResult:
    """What a campaign cost and what it gave."""

    clips: int
    crowd_clips: int  # clips labelled by the crowd (not seed, not gold)
    labelled: int  # crowd clips with a label (done or low-agreement)
    accuracy: float | None  # crowd labels against the truth
    low_agreement: int
    regular_answers: int
    answers_total: int  # every kind: regular, control, consistency
    answers_per_clip: float | None  # regular answers per crowd clip
    fixed_answers: int  # FIXED_ANSWERS x crowd clips
    seconds: float
    early_answers_per_clip: float | None = None  # over the first EARLY_CLIPS finished crowd clips
    early_accuracy: float | None = None  # their labels against the truth
    model_scores: list[dict[str, Any]] = field(default_factory=list)
    annotators: list[dict[str, Any]] = field(default_factory=list)
    queue: str = "redundancy"  # the project's queue (`engine.learning.relabel`)
    budget: int | None = None  # the project's budget (answers of every kind), None: no limit
    correct: int | None = None  # crowd clips finished with the true label
    answers_per_correct: float | None = None  # regular answers (on every clip) per correct crowd clip
    model_uar: float | None = None  # UAR of the newest round's predictions against the truth, over
    # every clip neither seed nor control (heard or not)
    model_uar_clips: int | None = None  # clips that UAR is over
    # after each learning round (`--inline` only): answers spent so far (every kind, regular), the
    # round's labels and its model's UAR against the truth
    curve: list[dict[str, Any]] = field(default_factory=list)
    heldout_uar: float | None = None  # `--inline --heldout N`: the final labels' model on N clips outside
    heldout_clips: int | None = None


def read_truth(folder: Path) -> dict[str, str]:
    """`labels.csv` of `folder` as base file name -> label (files must be unique by name)."""
    path = Path(folder) / "labels.csv"
    if not path.is_file():
        raise ListenloopError(f"{path}: no such file (expected columns file,label)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"file", "label"} <= set(table.columns):
        raise ListenloopError(f"{path}: needs columns file and label")
    names = table["file"].map(lambda f: Path(f).name)
    if names.duplicated().any():
        raise ListenloopError(f"{path}: file names must be unique ({names[names.duplicated()].iloc[0]})")
    return dict(zip(names, table["label"], strict=True))


def binary_truth(truth: dict[str, str], positive: Sequence[str]) -> dict[str, str]:
    """`truth` as a binary task: "1" for the `positive` classes, "0" for the rest."""
    unknown = sorted(set(positive) - set(truth.values()))
    if unknown:
        raise ListenloopError(f"--positive: no class {', '.join(unknown)} in labels.csv")
    chosen = set(positive)
    return {n: "1" if v in chosen else "0" for n, v in truth.items()}


def early_clips(
    crowd: Sequence[dict[str, str]], answers: Sequence[dict[str, str]], n: int
) -> list[dict[str, str]]:
    """The first `n` finished crowd clips (export rows) in the order they finished: the time
    of each clip's last regular answer, from the answers export (ties by clip id)."""
    last: dict[str, str] = {}
    for a in answers:  # in the order they came
        if a["kind"] == "regular":
            last[a["clip_id"]] = a["answered_at"]
    finished = [r for r in crowd if r["status"] in ("done", "low_agreement") and r["clip_id"] in last]
    finished.sort(key=lambda r: (last[r["clip_id"]], int(r["clip_id"])))
    return finished[:n]


def _zip(folder: Path, names: Sequence[str]) -> bytes:
    import zipfile

    table = pd.read_csv(Path(folder) / "labels.csv", dtype=str, keep_default_na=False)
    paths = {Path(f).name: Path(folder) / f for f in table["file"]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.write(paths[name], name)
    return buf.getvalue()


def _pick(truth: dict[str, str], per_class: int, rng: random.Random, exclude: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for label in sorted(set(truth.values())):
        names = sorted(n for n, v in truth.items() if v == label and n not in exclude)
        for n in rng.sample(names, min(per_class, len(names))):
            out[n] = label
    return out


def class_answer(classes: Sequence[str]) -> Callable[[str, float, random.Random], str]:
    """The classification crowd's rule: the truth with probability `skill`, else a random other
    class; a skill of 0 is a spammer who answers uniformly at random."""

    def answer(truth: str, skill: float, rng: random.Random) -> str:
        if skill > 0 and rng.random() < skill:
            return truth
        if skill > 0:
            return rng.choice([c for c in classes if c != truth])
        return rng.choice(list(classes))

    return answer


async def annotate(
    base: str,
    pid: int,
    tokens: list[str],
    skills: Sequence[float],
    clip_truth: dict[str, str],
    answer_of: Callable[[str, float, random.Random], str],
    deadline: float,
    seed: int,
    think: float = 0.0,
    strict: bool = False,
) -> None:
    """Every annotator answers (`answer_of(truth, skill, rng)`) until `next` has had nothing for
    them a few times in a row, or the deadline. `strict`: a refused answer is an error."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as c:

        async def one(tok: str, skill: float, k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            h = {"Authorization": f"Bearer {tok}"}
            idle = 0
            while time.monotonic() < deadline and idle < 20:
                r = await c.get(f"/api/v1/projects/{pid}/next", headers=h)
                if r.status_code != 200:
                    idle += 1
                    await asyncio.sleep(0.5)
                    continue
                idle = 0
                task = r.json()
                audio = await c.get(task["audio_url"], headers=h)  # `next` names no clip: known by its audio
                answer = answer_of(clip_truth[hashlib.sha256(audio.content).hexdigest()], skill, rng)
                url = f"/api/v1/tasks/{task['task_id']}/answer"
                r = await c.post(url, headers=h, json={"answer": answer})
                if strict:
                    r.raise_for_status()
                if think:
                    await asyncio.sleep(think)

        await asyncio.gather(*(one(t, s, k) for k, (t, s) in enumerate(zip(tokens, skills, strict=True))))


async def _shoot_later(
    base: str, pid: int, viewer: tuple[str, str], out: Path, after: float, say: Callable[[str], None]
) -> None:
    """Screenshots of the pages `after` seconds into the crowd's work."""
    from listenloop.bench.screenshots import take_screenshots

    await asyncio.sleep(after)
    try:
        saved = await take_screenshots(base, pid, (OWNER, OWNER_PASSWORD), viewer, out)
    except Exception as exc:  # a page that does not render must not cost the campaign's figures
        say(f"screenshots failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    say(f"screenshots after {after:g} s: {', '.join(str(p) for p in saved)}")


async def _together(*jobs: Any) -> None:
    await asyncio.gather(*jobs)


def run_campaign(
    folder: Path,
    *,
    skills: Sequence[float] = DEFAULT_SKILLS,
    positive: Sequence[str] | None = None,
    redundancy: dict[str, float] | None = None,
    seeds: int = 2,
    gold: int = 1,
    limit: int | None = None,
    feature_set: str = "compare",
    retrain_every: int = 20,
    max_seconds: float = 900.0,
    think: float = 0.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    screenshots: Path | None = None,
    screenshot_after: float = 60.0,
    queue: str | None = None,
    budget: int | None = None,
) -> CampaignResult:
    """Run one campaign on the clips of `folder` (at most `limit`, a random sample) and score it.

    `positive`: run a binary project, those classes against the rest. `redundancy`: the
    project's `{min, max, tau}` (None: its default, dynamic 2, 7, 0.95; `{5, 5, 1}`: a fixed
    5 answers per clip, the baseline dynamic redundancy is compared with at equal accuracy).
    `think` is each annotator's pause after an answer: at human pace the learning service
    retrains every `retrain_every` labels while the campaign runs, so the score history fills.
    `screenshots`: a folder for the dashboard and labelling page, taken `screenshot_after`
    seconds into the crowd's work (`bench.screenshots`). `queue`: the project's queue
    (redundancy or relabel_or_new; None: its default); `budget`: the project's budget (answers
    of every kind), after which `next` has nothing more.
    """
    import httpx

    say = progress or (lambda _line: None)
    rng = random.Random(seed)
    truth = read_truth(folder)
    if limit is not None and limit < len(truth):
        keep = set(rng.sample(sorted(truth), limit))
        truth = {n: v for n, v in truth.items() if n in keep}
    if positive:
        truth = binary_truth(truth, positive)
    classes = sorted(set(truth.values()))
    seed_labels = _pick(truth, seeds, rng, set())
    gold_labels = _pick(truth, gold, rng, set(seed_labels))
    with tempfile.TemporaryDirectory(prefix="listenloop-bench-campaign-") as tmp:
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
                r = c.post(
                    "/api/v1/projects",
                    headers=oh,
                    json={
                        "name": "campaign",
                        "task_type": "binary" if positive else "classification",
                        "classes": classes,
                        "feature_set": feature_set,
                        "retrain_every": retrain_every,
                        **({"redundancy": redundancy} if redundancy else {}),
                        **({"queue": queue} if queue else {}),
                        **({"budget": budget} if budget else {}),
                    },
                )
                r.raise_for_status()
                pid = r.json()["id"]
                seeds_csv = "file,label\n" + "".join(f"{n},{v}\n" for n, v in seed_labels.items())
                r = c.post(
                    f"/api/v1/projects/{pid}/clips",
                    headers=oh,
                    files={
                        "archive": ("clips.zip", _zip(folder, sorted(truth)), "application/zip"),
                        "labels": ("labels.csv", seeds_csv.encode(), "text/csv"),
                    },
                )
                r.raise_for_status()
                say(f"project {pid}: {r.json()['added']} clips, {len(seed_labels)} seed labels")
                gold_csv = "file,label\n" + "".join(f"{n},{v}\n" for n, v in gold_labels.items())
                c.post(
                    f"/api/v1/projects/{pid}/gold",
                    headers=oh,
                    files={"file": ("gold.csv", gold_csv.encode(), "text/csv")},
                ).raise_for_status()
                clip_truth = _truth_by_audio(folder, truth)
                tokens = []
                for k in range(len(skills)):
                    user, pw = f"sim{k}_{rng.randrange(1 << 30)}", f"pw-{rng.randrange(1 << 40)}"
                    c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
                    tokens.append(token_of(c, user, pw))
                viewer = None
                if screenshots is not None:  # a member who only looks: their open task waits for its lease
                    viewer = (f"viewer_{rng.randrange(1 << 30)}", f"pw-{rng.randrange(1 << 40)}")
                    c.post(
                        "/api/v1/users", json={"username": viewer[0], "password": viewer[1]}
                    ).raise_for_status()
                say(f"{len(skills)} annotators of skill {', '.join(f'{s:g}' for s in skills)} at work ...")
                work = annotate(
                    server.base,
                    pid,
                    tokens,
                    skills,
                    clip_truth,
                    class_answer(classes),
                    time.monotonic() + max_seconds,
                    seed,
                    think,
                )
                if viewer is not None and screenshots is not None:
                    shots = _shoot_later(server.base, pid, viewer, screenshots, screenshot_after, say)
                    asyncio.run(_together(work, shots))
                else:
                    asyncio.run(work)
                rows = _export(c, oh, pid)
                status = c.get(f"/api/v1/projects/{pid}/status", headers=oh).json()
                annotators = list(
                    csv.DictReader(
                        io.StringIO(
                            c.get(
                                f"/api/v1/projects/{pid}/export",
                                params={"format": "csv", "table": "annotators"},
                                headers=oh,
                            ).text
                        )
                    )
                )
                answers = list(
                    csv.DictReader(
                        io.StringIO(
                            c.get(
                                f"/api/v1/projects/{pid}/answers", params={"format": "csv"}, headers=oh
                            ).text
                        )
                    )
                )
        finally:
            server.stop()
    crowd = [r for r in rows if r["source"] == "crowd"]
    labelled = [r for r in crowd if r["label"] not in ("", None)]
    right = sum(r["label"] == truth[r["file"]] for r in labelled)
    regular = sum(int(r["answers"] or 0) for r in crowd)
    early = early_clips(crowd, answers, EARLY_CLIPS)
    spent = sum(a["kind"] == "regular" for a in answers)  # on every clip, finished or not
    unseeded = [r for r in rows if r["source"] not in ("seed", "gold") and r["status"] != "gold"]
    guessed = [r for r in unseeded if r.get("model_label") not in ("", None)]
    early_labelled = [r for r in early if r["label"] not in ("", None)]
    return CampaignResult(
        clips=len(rows),
        crowd_clips=len(crowd),
        labelled=len(labelled),
        accuracy=round(right / len(labelled), 4) if labelled else None,
        low_agreement=sum(r["status"] == "low_agreement" for r in crowd),
        regular_answers=regular,
        answers_total=len(answers),
        answers_per_clip=round(regular / len(crowd), 3) if crowd else None,
        fixed_answers=FIXED_ANSWERS * len(crowd),
        seconds=round(time.monotonic() - t0, 1),
        early_answers_per_clip=round(sum(int(r["answers"] or 0) for r in early) / len(early), 3)
        if early
        else None,
        early_accuracy=round(
            sum(r["label"] == truth[r["file"]] for r in early_labelled) / len(early_labelled), 4
        )
        if early_labelled
        else None,
        model_scores=list(status.get("model_scores", [])),
        annotators=annotators,
        queue=queue or "redundancy",
        budget=budget,
        correct=right,
        answers_per_correct=round(spent / right, 3) if right else None,
        model_uar=_uar([truth[r["file"]] for r in guessed], [r["model_label"] for r in guessed]),
        model_uar_clips=len(guessed),
    )


def _uar(truth: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Unweighted average recall (balanced accuracy) of `predicted` against `truth`; None if empty."""
    if not truth:
        return None
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # a few clips need not hold every class the model predicts
        warnings.simplefilter("ignore", UserWarning)
        return round(float(balanced_accuracy_score(list(truth), list(predicted))), 4)


def _truth_by_audio(folder: Path, truth: dict[str, str]) -> dict[str, str]:
    """The truth keyed by the SHA-256 of each clip's audio (the server serves it as uploaded)."""
    table = pd.read_csv(Path(folder) / "labels.csv", dtype=str, keep_default_na=False)
    paths = {Path(f).name: Path(folder) / f for f in table["file"]}
    return {hashlib.sha256(paths[name].read_bytes()).hexdigest(): label for name, label in truth.items()}


def _export(c: Any, headers: dict[str, str], pid: int) -> list[dict[str, str]]:
    r = c.get(f"/api/v1/projects/{pid}/export", params={"format": "csv"}, headers=headers)
    r.raise_for_status()
    return list(csv.DictReader(io.StringIO(r.text)))


def format_result(r: CampaignResult) -> str:
    scores = ", ".join(
        f"{s.get('labels')}: {s['score']:.3f}" for s in r.model_scores if s.get("score") is not None
    )
    return (
        f"{r.labelled} of {r.crowd_clips} crowd clips labelled, accuracy {r.accuracy}, "
        f"{r.low_agreement} low-agreement; {r.regular_answers} regular answers "
        f"({r.answers_per_clip} per clip) against {r.fixed_answers} for a fixed {FIXED_ANSWERS}; "
        f"{r.answers_total} answers of every kind; {r.seconds} s\n"
        f"first {EARLY_CLIPS} finished clips: {r.early_answers_per_clip} answers per clip, "
        f"accuracy {r.early_accuracy}\n"
        f"model score history (labels: score): {scores or 'none'}\n"
        f"queue {r.queue}, budget {r.budget}: {r.correct} crowd clips right, "
        f"{r.answers_per_correct} regular answers per right clip; model UAR against the truth "
        f"{r.model_uar} over {r.model_uar_clips} clips"
        + (f"; on {r.heldout_clips} held-out clips {r.heldout_uar}" if r.heldout_clips else "")
    )


def result_as_json(r: CampaignResult) -> str:
    return json.dumps(asdict(r), indent=1)
