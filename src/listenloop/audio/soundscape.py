"""Soundscapes for sound event detection: events from a bank mixed over background noise with
known onsets and offsets, at chosen event-to-background ratios, overlapping where they fall.

Built on `mixing` (EBR scaling over each event's span against the pure background, peak
safety), so the same definition of the ratio holds as for `listenloop mix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from listenloop.audio.mixing import coloured_noise, db_to_gain, prevent_clipping, scale_to_ebr


@dataclass(frozen=True)
class PlacedEvent:
    """One event of a soundscape: where it sounds (seconds, offset exclusive), what and how loud."""

    onset: float
    offset: float
    label: str
    ebr_db: float
    source: str


@dataclass
class Soundscape:
    """A mixture and its true events."""

    signal: np.ndarray
    sample_rate: int
    events: list[PlacedEvent]

    @property
    def duration(self) -> float:
        return len(self.signal) / self.sample_rate


def synthesise(
    bank: Sequence[np.ndarray],
    labels: Sequence[str],
    sources: Sequence[str],
    duration: float,
    sample_rate: int,
    rng: np.random.Generator,
    events_per_minute: float = 20.0,
    class_weights: dict[str, float] | None = None,
    ebrs_db: Sequence[float] = (-6.0, 0.0, 6.0),
    background_colour: str = "pink",
    background_dbfs: float = -30.0,
) -> Soundscape:
    """A `duration`-second soundscape: `background_colour` noise at `background_dbfs` RMS with
    events from `bank` (trimmed signals at `sample_rate`, their `labels` and `sources`).

    Onsets are uniform over the file (so events overlap by chance: polyphony), about
    `events_per_minute` of them; each event's class is drawn with `class_weights` (default
    equal; unequal weights make rare classes), then one of that class's recordings, and its
    EBR from `ebrs_db`. Each EBR is measured against the pure background under the event.
    """
    length = round(duration * sample_rate)
    background = coloured_noise(length, background_colour, rng) * np.float32(db_to_gain(background_dbfs))
    classes = sorted(set(labels))
    weights = np.array([(class_weights or {}).get(c, 1.0) for c in classes], dtype=float)
    weights = weights / weights.sum()
    by_class = {c: [i for i, lab in enumerate(labels) if lab == c] for c in classes}
    n_events = int(rng.poisson(events_per_minute * duration / 60.0))
    mixture = background.copy()
    events: list[PlacedEvent] = []
    for _ in range(n_events):
        label = classes[int(rng.choice(len(classes), p=weights))]
        pick = by_class[label][int(rng.integers(len(by_class[label])))]
        event = bank[pick]
        onset = int(rng.integers(0, max(1, length - len(event))))
        ebr = float(ebrs_db[int(rng.integers(len(ebrs_db)))])
        start, end = onset, min(length, onset + len(event))
        mixture[start:end] += scale_to_ebr(event[: end - start], background[start:end], ebr)
        events.append(PlacedEvent(start / sample_rate, end / sample_rate, label, ebr, sources[pick]))
    events.sort(key=lambda e: (e.onset, e.label))
    return Soundscape(prevent_clipping(mixture), sample_rate, events)


def segment_activity(
    events: Sequence[PlacedEvent], classes: Sequence[str], duration: float, hop: float = 1.0
) -> np.ndarray:
    """(segments, classes) 0/1 true activity per `hop`-second segment: a class is active in a
    segment when one of its events overlaps it at all (sed_eval's segment-based reference)."""
    n = int(np.ceil(duration / hop - 1e-9))
    out = np.zeros((n, len(classes)), dtype=np.int8)
    index = {c: i for i, c in enumerate(classes)}
    for e in events:
        first = int(np.floor(e.onset / hop))
        last = int(np.ceil(e.offset / hop - 1e-9))
        out[first : max(first + 1, min(last, n)), index[e.label]] = 1
    return out
