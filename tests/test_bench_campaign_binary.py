"""`listenloop bench campaign --positive`: a binary campaign, and the cost of its first clips."""

from __future__ import annotations

import pytest

from listenloop.bench.campaign import binary_truth, early_clips
from listenloop.errors import ListenloopError


def test_positive_classes_against_the_rest() -> None:
    truth = {"a.wav": "0", "b.wav": "3", "c.wav": "8", "d.wav": "1"}
    assert binary_truth(truth, ["3", "8"]) == {"a.wav": "0", "b.wav": "1", "c.wav": "1", "d.wav": "0"}
    with pytest.raises(ListenloopError, match="no class 9"):
        binary_truth(truth, ["9"])


def test_early_clips_are_the_first_finished_by_their_last_regular_answer() -> None:
    crowd = [
        {"clip_id": "1", "status": "done", "answers": "3"},
        {"clip_id": "2", "status": "low_agreement", "answers": "9"},
        {"clip_id": "3", "status": "queued", "answers": "1"},  # not finished
        {"clip_id": "4", "status": "done", "answers": "2"},
    ]
    answers = [
        {"clip_id": "1", "kind": "regular", "answered_at": "2026-01-01T00:00:01.000Z"},
        {"clip_id": "2", "kind": "regular", "answered_at": "2026-01-01T00:00:02.000Z"},
        {"clip_id": "4", "kind": "regular", "answered_at": "2026-01-01T00:00:03.000Z"},
        {"clip_id": "1", "kind": "regular", "answered_at": "2026-01-01T00:00:04.000Z"},  # 1 ends last
        {"clip_id": "4", "kind": "control", "answered_at": "2026-01-01T00:00:05.000Z"},  # not regular
        {"clip_id": "3", "kind": "regular", "answered_at": "2026-01-01T00:00:06.000Z"},
    ]
    assert [r["clip_id"] for r in early_clips(crowd, answers, 2)] == ["2", "4"]
    assert [r["clip_id"] for r in early_clips(crowd, answers, 10)] == ["2", "4", "1"]
