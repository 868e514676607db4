"""Our segment-based F1 and error rate (`sed.metrics`) against sed_eval's own
SegmentBasedMetrics on the same events (runs where sed_eval is installed; it needs dcase_util,
librosa and numba, so it is no dependency of the project)."""

from __future__ import annotations

import math
import warnings

import pytest

from listenloop.audio.soundscape import PlacedEvent, segment_activity
from listenloop.sed.metrics import segment_scores

with warnings.catch_warnings():  # dcase_util imports the deprecated pkg_resources
    warnings.simplefilter("ignore")
    sed_eval = pytest.importorskip("sed_eval")
    dcase_util = pytest.importorskip("dcase_util")

CLASSES = ["car", "bird", "speech"]
DURATION = 12.0
# Overlapping and fractional events: a deletion, an insertion, substitutions in the same
# segment (a bird heard as speech), and a class (speech) with insertions only.
REFERENCE = [
    (0.5, 3.2, "car"),
    (2.0, 4.0, "bird"),
    (6.3, 9.1, "car"),
    (7.0, 8.0, "bird"),
    (10.0, 11.5, "bird"),
]
ESTIMATE = [
    (0.0, 2.5, "car"),
    (2.2, 3.0, "bird"),
    (7.4, 9.9, "car"),
    (7.1, 7.9, "speech"),
    (4.5, 5.2, "speech"),
]


def _ours(events: list[tuple[float, float, str]]):
    placed = [PlacedEvent(on, off, label, 0.0, "") for on, off, label in events]
    return segment_activity(placed, CLASSES, DURATION, hop=1.0)


def _container(events: list[tuple[float, float, str]]):
    return dcase_util.containers.MetaDataContainer(
        [{"filename": "a.wav", "onset": on, "offset": off, "event_label": label} for on, off, label in events]
    )


def test_segment_scores_equal_sed_eval() -> None:
    ours = segment_scores(_ours(REFERENCE), _ours(ESTIMATE), CLASSES)
    metrics = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=CLASSES, time_resolution=1.0)
    metrics.evaluate(reference_event_list=_container(REFERENCE), estimated_event_list=_container(ESTIMATE))
    overall = metrics.results_overall_metrics()
    assert ours.f1 == pytest.approx(overall["f_measure"]["f_measure"])
    assert ours.er == pytest.approx(overall["error_rate"]["error_rate"])
    assert ours.substitution_rate == pytest.approx(overall["error_rate"]["substitution_rate"])
    assert ours.deletion_rate == pytest.approx(overall["error_rate"]["deletion_rate"])
    assert ours.insertion_rate == pytest.approx(overall["error_rate"]["insertion_rate"])
    classwise = metrics.results_class_wise_metrics()
    for c in ("car", "bird"):  # classes with reference activity
        assert ours.class_f1[c] == pytest.approx(classwise[c]["f_measure"]["f_measure"]), c
        assert ours.class_er[c] == pytest.approx(classwise[c]["error_rate"]["error_rate"]), c
    # speech: no reference activity; sed_eval divides by a tiny epsilon (ER ~1e16), ours says NaN
    assert classwise["speech"]["error_rate"]["error_rate"] > 1e6
    assert ours.class_f1["speech"] == 0.0 and math.isnan(ours.class_er["speech"])
