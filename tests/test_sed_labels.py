"""Weak segment answers -> strong soft labels (004_ sec. 2.1), events, MAESTRO-Real files, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listenloop.audio.mixing import rms
from listenloop.audio.soundscape import PlacedEvent, segment_activity, synthesise
from listenloop.crowd.soft_labels import activity_events, hard_labels, presence_items, weak_to_strong
from listenloop.errors import ListenloopError
from listenloop.sed import maestro
from listenloop.sed.annotators import SegmentCrowd
from listenloop.sed.metrics import kl_divergence, segment_scores, trimmed_midrange

# A 4 s recording, 2 s segments at 1 s hops: segments start at 0, 1, 2.
ANSWERS = pd.DataFrame(
    [
        ("r", 0, "good", "car"),
        ("r", 0, "bad", ""),
        ("r", 1, "good", "car|bird"),
        ("r", 1, "bad", "bird"),
        ("r", 2, "good", ""),
        ("r", 2, "bad", "car"),
    ],
    columns=["recording", "onset", "worker", "label"],
)


def test_weak_to_strong_worked_example() -> None:
    plain = weak_to_strong(ANSWERS, segment=2, hop=1)
    assert list(plain.columns) == ["bird", "car"]
    assert list(plain.index) == [("r", 0, 1), ("r", 1, 2), ("r", 2, 3), ("r", 3, 4)]
    # second 0: segment 0 only; 1: segments 0, 1; 2: segments 1, 2; 3: segment 2.
    np.testing.assert_allclose(plain["car"], [1 / 2, 2 / 4, 2 / 4, 1 / 2])
    np.testing.assert_allclose(plain["bird"], [0, 2 / 4, 2 / 4, 0])
    theta = {"good": 0.9, "bad": 0.1}
    soft = weak_to_strong(ANSWERS, theta, segment=2, hop=1)
    np.testing.assert_allclose(soft["car"], [0.9, (0.9 + 0.9) / 2, (0.9 + 0.1) / 2, 0.1])
    np.testing.assert_allclose(soft["bird"], [0, 1.0 / 2, 1.0 / 2, 0])
    # The plain case equals soft_labels' per-item eq. 1 on the expanded answers.
    hard = hard_labels(soft)
    assert activity_events(hard) == [("r", 0.0, 2.0, "car")]


def test_weak_to_strong_final_segment_off_the_hop_grid() -> None:
    """A recording's final segment ends at its end, off the hop grid ([2.5, 4.5) at hop 1): it
    votes on every sub-segment it overlaps, so [4, 5) (the file's last half second) is labelled."""
    answers = pd.DataFrame(
        [("r", 0, "w", "car"), ("r", 2, "w", ""), ("r", 2.5, "w", "bird")],
        columns=["recording", "onset", "worker", "label"],
    )
    soft = weak_to_strong(answers, segment=2, hop=1)
    assert list(soft.index.get_level_values("onset")) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(soft["car"], [1, 1, 0, 0, 0])
    np.testing.assert_allclose(soft["bird"], [0, 0, 0.5, 0.5, 1])
    # On the grid nothing changes: the last segment [2, 4) votes on [2, 3) and [3, 4) only.
    on_grid = weak_to_strong(answers.iloc[:2], segment=2, hop=1)
    assert list(on_grid.index.get_level_values("onset")) == [0, 1, 2, 3]


def test_weak_to_strong_rejects_bad_onsets_and_zero_competence() -> None:
    bad = ANSWERS.assign(onset=[0, -1, 1, 1, 2, 2])
    with pytest.raises(ListenloopError, match=r"row 2: onset -1 is not a time"):
        weak_to_strong(bad, segment=2, hop=1)
    with pytest.raises(ListenloopError, match="whole number"):
        weak_to_strong(ANSWERS, segment=2.5, hop=1)
    with pytest.raises(ListenloopError, match="at 0 s: all its annotators have competence 0"):
        weak_to_strong(ANSWERS, {"good": 0.0, "bad": 0.0}, segment=2, hop=1)


def test_activity_events_merges_runs_per_class_and_recording() -> None:
    idx = pd.MultiIndex.from_tuples(
        [("a", 0, 1), ("a", 1, 2), ("a", 2, 3), ("a", 3, 4), ("b", 0, 1)],
        names=["recording", "onset", "offset"],
    )
    hard = pd.DataFrame({"x": [True, True, False, True], "y": [False, True, True, False]}, index=idx[:4])
    hard = pd.concat([hard, pd.DataFrame({"x": [True], "y": [False]}, index=idx[4:])])
    assert activity_events(hard) == [
        ("a", 0.0, 2.0, "x"),
        ("a", 1.0, 3.0, "y"),
        ("a", 3.0, 4.0, "x"),
        ("b", 0.0, 1.0, "x"),
    ]


def test_presence_items_one_binary_item_per_segment_and_class() -> None:
    items = presence_items(ANSWERS, ["bird", "car"])
    assert len(items) == 2 * len(ANSWERS)
    row = items[(items["item"] == "r@1#bird") & (items["worker"] == "bad")]
    assert row["label"].tolist() == ["1"]
    assert items[items["item"] == "r@0#bird"]["label"].tolist() == ["0", "0"]


def test_segment_scores_worked_example() -> None:
    classes = ["a", "b", "c"]
    ref = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    est = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    s = segment_scores(ref, est, classes)
    # segment 1: TP 1, FP 1, FN 1 -> one substitution; 2: one deletion; 3: one insertion; N = 3.
    assert s.er == pytest.approx(1.0)
    assert (s.substitution_rate, s.deletion_rate, s.insertion_rate) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert s.f1 == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    assert s.class_f1 == pytest.approx({"a": 2 / 3, "b": 0.0, "c": 0.0})
    assert s.class_er["a"] == pytest.approx(0.5) and s.class_er["b"] == pytest.approx(2.0)
    assert np.isnan(s.class_er["c"])
    assert s.classes_detected == 1
    assert s.macro_f1 == pytest.approx((2 / 3 + 0) / 2)
    perfect = segment_scores(ref, ref, classes)
    assert (perfect.f1, perfect.er) == (1.0, 0.0)


def test_kl_and_trimmed_midrange() -> None:
    assert kl_divergence(np.array([0.3, 1.0]), np.array([0.3, 1.0])) == pytest.approx(0.0, abs=1e-6)
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert kl_divergence(np.array([0.5]), np.array([0.25])) == pytest.approx(expected)
    assert np.isfinite(kl_divergence(np.array([1.0]), np.array([-0.2])))  # linear output below 0
    values = np.concatenate([np.zeros(50), np.arange(1, 11) / 10])  # zeros are left out
    assert trimmed_midrange(values) == pytest.approx((0.19 + 0.91) / 2)
    assert trimmed_midrange(np.zeros(5)) == 0.5


def test_maestro_round_trip(tmp_path: Path) -> None:
    soft = weak_to_strong(
        ANSWERS.assign(label=ANSWERS["label"].str.replace("bird", "people talking")), segment=2, hop=1
    )
    files = maestro.export(soft, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == ["hard/r.txt", "soft/r.txt"]
    assert (tmp_path / "soft" / "r.txt").read_text().splitlines()[:2] == [
        "0\t1\tcar\t0.5",
        "0\t1\tpeople talking\t0",
    ]
    back = maestro.import_soft(tmp_path / "soft")
    pd.testing.assert_frame_equal(back, soft, check_names=False, check_index_type=False)
    assert maestro.read_hard(tmp_path / "hard" / "r.txt") == []  # nothing above 0.5 in the plain mean
    (tmp_path / "h.txt").write_text("2 11 people talking\n")
    assert maestro.read_hard(tmp_path / "h.txt") == [(2.0, 11.0, "people talking")]
    (tmp_path / "s.txt").write_text("2 3 car 0.9\n2 3 footsteps 0.7\n")
    assert maestro.read_soft(tmp_path / "s.txt").to_numpy().tolist() == [[0.9, 0.7]]
    (tmp_path / "bad.txt").write_text("2 3 car 1.5\n")
    with pytest.raises(ListenloopError, match=r"bad.txt line 1: soft label 1.5 is outside \[0, 1\]"):
        maestro.read_soft(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("5\t3\tcar\n")
    with pytest.raises(ListenloopError, match="line 1: onset 5 must be"):
        maestro.read_hard(tmp_path / "bad2.txt")


def _bank(sr: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    t = np.arange(int(0.5 * sr)) / sr
    tone = lambda f: (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)  # noqa: E731
    return [tone(440), tone(880), tone(1320)], ["a", "b", "b"], ["a1.wav", "b1.wav", "b2.wav"]


def test_soundscape_events_and_ratios() -> None:
    sr = 8000
    bank, labels, sources = _bank(sr)
    rng = np.random.default_rng(1)
    scape = synthesise(bank, labels, sources, 60, sr, rng, events_per_minute=10, ebrs_db=(6.0,))
    assert len(scape.signal) == 60 * sr and scape.duration == 60
    assert len(scape.events) > 3 and {e.label for e in scape.events} <= {"a", "b"}
    assert all(e.ebr_db == 6.0 and 0 <= e.onset < e.offset <= 60 for e in scape.events)
    assert np.max(np.abs(scape.signal)) <= 0.99 + 1e-6
    # An event over the background alone: about 6 dB above the background (event + noise power).
    quiet = np.ones(len(scape.signal), dtype=bool)
    for o in scape.events:
        quiet[int(o.onset * sr) : int(np.ceil(o.offset * sr))] = False
    lone = [
        e for e in scape.events if sum(o.onset < e.offset and e.onset < o.offset for o in scape.events) == 1
    ]
    e = lone[0]
    seg = scape.signal[int(e.onset * sr) : int(e.offset * sr)]
    level = 20 * np.log10(rms(seg) / rms(scape.signal[quiet]))
    assert level == pytest.approx(10 * np.log10(1 + 10**0.6), abs=1.0)


def test_segment_activity_marks_every_overlapped_second() -> None:
    events = [PlacedEvent(0.5, 2.2, "a", 0.0, "x"), PlacedEvent(3.0, 3.5, "b", 0.0, "y")]
    act = segment_activity(events, ["a", "b"], 5.0)
    assert act.tolist() == [[1, 0], [1, 0], [1, 0], [0, 1], [0, 0]]


def test_simulated_crowd_truthful_and_spamming_workers() -> None:
    rng = np.random.default_rng(0)
    events = [PlacedEvent(3.0, 4.0, "a", 6.0, "x")]
    perfect = SegmentCrowd(["p"], np.array([1.0]), np.array([0.5]), miss_by_ebr={6.0: 0.0})
    answers = perfect.annotate({"r": (events, 14.0)}, ["a", "b"], rng, per_segment=1, segment=10, hop=1)
    assert answers["onset"].tolist() == [0, 1, 2, 3, 4]
    assert answers["label"].tolist() == ["a", "a", "a", "a", ""]  # segment 4 starts at the offset
    spammer = SegmentCrowd(["s"], np.array([0.0]), np.array([0.5]))
    noisy = spammer.annotate({"r": (events, 400.0)}, ["a", "b"], rng, per_segment=1)
    share_b = noisy["label"].str.contains("b").mean()
    assert 0.4 < share_b < 0.6  # marks each class at its rate, whatever it hears
    crowd = SegmentCrowd.draw(20, rng, poor_share=0.25)
    assert (crowd.theta <= 0.3).sum() >= 5 and len(set(crowd.worker_ids)) == 20


def test_sed_experiment_without_torch_or_bank_says_so(tmp_path: Path) -> None:
    """The base install (no torch) imports the sed commands and refuses the experiment in one line."""
    import subprocess
    import sys

    blocked = "import sys; sys.modules['torch'] = None; from listenloop.cli import main; main()"
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "labels.csv").write_text("file,label\n")
    runs = {
        "torch": [*("sed", "experiment", "--quick", "--out", str(tmp_path / "o"), "--events", str(bank))],
        "bank": [*("sed", "experiment", "--out", str(tmp_path / "o"), "--events", str(tmp_path / "none"))],
    }
    for what, args in runs.items():
        proc = subprocess.run(
            [sys.executable, "-c", blocked, *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2, (what, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert ("needs torch" if what == "torch" else "no labels.csv") in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cli_labels_and_score_round_trip(tmp_path: Path) -> None:
    """`sed labels` turns segment answers into MAESTRO files; `sed score` reads them back."""
    import json

    from typer.testing import CliRunner

    from listenloop.cli import app

    answers = ANSWERS.assign(label=ANSWERS["label"])
    answers.to_csv(tmp_path / "answers.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "labels"
    args = ["sed", "labels", str(tmp_path / "answers.csv"), "--out", str(out), "--segment", "2"]
    r = runner.invoke(app, [*args, "--weights", "equal"])
    assert r.exit_code == 0, r.output
    assert (out / "soft" / "r.txt").read_text().splitlines()[:2] == ["0\t1\tbird\t0", "0\t1\tcar\t0.5"]
    r = runner.invoke(app, [*args, "--weights", "equal"])
    assert r.exit_code != 0 and "not empty" in str(r.exception)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "r.txt").write_text("0\t2\tcar\n1.5\t2\tbird\n")
    (tmp_path / "est").mkdir()
    (tmp_path / "est" / "r.txt").write_text("0\t1\tcar\n")
    r = runner.invoke(
        app,
        ["sed", "score", str(tmp_path / "ref"), str(tmp_path / "est"), "--json", str(tmp_path / "s.json")],
    )
    assert r.exit_code == 0, r.output
    scores = json.loads((tmp_path / "s.json").read_text())
    # seconds 0, 1: car in both, car missed in 1, bird missed in 1 -> TP 1, FN 2, N 3
    assert scores["f1"] == pytest.approx(2 / (2 + 2)) and scores["er"] == pytest.approx(2 / 3)
    r = runner.invoke(app, ["sed", "score", str(tmp_path / "est2"), str(tmp_path / "est")])
    assert r.exit_code != 0 and "no *.txt" in str(r.exception)
