"""Mixing maths: coloured noise, event-to-background ratios, placement and peak safety.

General building blocks for synthetic audio with known targets: the EBR regression
dataset (`listenloop mix`) uses them now, sound-event soundscapes will reuse them.

Event-to-background ratio (EBR), as used throughout::

    EBR_dB = 20 * log10( rms(event) / rms(background[onset:offset]) )

where `event` is the event's samples as placed in the clip (its active span, onset to
offset, after any cropping) and `background[onset:offset]` is the background under that
same span. Measuring both over the span, not the whole clip, makes the ratio independent
of the event's duration and of the clip length. Trim the event's leading and trailing
silence first (`trim_silence`) so that the span is where it actually sounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Spectral exponent alpha of each noise colour: power spectral density ~ 1 / f**alpha.
NOISE_COLOURS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}

#: Default peak ceiling of a mixture (a little headroom below full scale).
DEFAULT_PEAK = 0.99


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def rms(x: np.ndarray) -> float:
    """Root mean square of `x` (computed in float64); 0.0 for an empty array."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def db_to_gain(db: float) -> float:
    """Amplitude gain of a level change of `db` decibels."""
    return float(10.0 ** (db / 20.0))


def coloured_noise(
    n_samples: int, colour: str = "pink", rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**alpha, at unit RMS (float32).

    White noise is shaped in the frequency domain (numpy rFFT): each bin's amplitude is
    multiplied by f**(-alpha/2), so power goes as f**-alpha: white (alpha 0, flat), pink
    (1, -3 dB/octave), brown (2, -6 dB/octave), blue (-1, +3 dB/octave). The DC bin is
    zeroed so the noise has no offset.
    """
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour '{colour}' (one of {', '.join(NOISE_COLOURS)})")
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    white = _as_rng(rng).standard_normal(n_samples)
    alpha = NOISE_COLOURS[colour]
    if alpha == 0.0 or n_samples < 3:
        noise = white - white.mean() if n_samples > 1 else white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n_samples)
        weights = np.zeros_like(freqs)
        weights[1:] = freqs[1:] ** (-alpha / 2.0)
        noise = np.fft.irfft(spectrum * weights, n=n_samples)
    level = rms(noise)
    if level == 0.0:  # a single zero-mean sample; cannot happen for n_samples >= 2
        return np.zeros(n_samples, dtype=np.float32)
    return (noise / level).astype(np.float32)


def active_span(x: np.ndarray, threshold_db: float = -60.0, frame: int = 160) -> tuple[int, int]:
    """(start, end) samples of `x` between its first and last frame within `threshold_db`
    of its loudest frame (frame RMS over `frame` samples). (0, 0) for silence."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 0, 0
    frame = max(1, min(int(frame), x.size))
    n_frames = -(-x.size // frame)
    padded = np.zeros(n_frames * frame)
    padded[: x.size] = x
    frame_rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    peak = frame_rms.max()
    if peak == 0.0:
        return 0, 0
    loud = np.flatnonzero(frame_rms >= peak * db_to_gain(threshold_db))
    return int(loud[0] * frame), int(min(x.size, (loud[-1] + 1) * frame))


def trim_silence(x: np.ndarray, threshold_db: float = -60.0, frame: int = 160) -> np.ndarray:
    """`x` without the leading and trailing frames quieter than `threshold_db` below its
    loudest frame, so that an event's span is where it sounds (see `active_span`)."""
    start, end = active_span(x, threshold_db, frame)
    return x[start:end]


def scale_to_ebr(event: np.ndarray, background: np.ndarray, ebr_db: float) -> np.ndarray:
    """`event` rescaled so that 20*log10(rms(event) / rms(background)) equals `ebr_db`.

    `background` is the reference under the event's span (the same samples as the event
    once placed; `mix_event` passes that slice). Returns float32. Raises ValueError when
    the event or the background is silent, where no gain can reach the ratio.
    """
    event_rms = rms(event)
    background_rms = rms(background)
    if event_rms == 0.0:
        raise ValueError("the event is silent: no gain reaches an event-to-background ratio")
    if background_rms == 0.0:
        raise ValueError("the background is silent under the event: the ratio is undefined")
    gain = background_rms * db_to_gain(ebr_db) / event_rms
    return (np.asarray(event, dtype=np.float64) * gain).astype(np.float32)


def place(event: np.ndarray, length: int, onset: int) -> np.ndarray:
    """`event` at sample `onset` in `length` zeros (float32); cropped where it runs past the end."""
    if not 0 <= onset < length:
        raise ValueError(f"onset {onset} is outside a signal of {length} samples")
    out = np.zeros(length, dtype=np.float32)
    end = min(length, onset + len(event))
    out[onset:end] = event[: end - onset]
    return out


def mix_event(
    background: np.ndarray,
    event: np.ndarray,
    onset_samples: int,
    ebr_db: float,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Add `event` to `background` at `onset_samples`, scaled to `ebr_db` over its span.

    Returns the mixture (float32, the background's length) and the event's (onset, offset)
    in samples, offset exclusive; an event running past the end is cropped first and the
    ratio is measured on what remains. `reference` (default: `background`) is the signal
    the ratio is measured against: a soundscape adding several events into one mixture
    passes its pure background here so that each event's EBR ignores the others.
    No clipping protection here: apply `prevent_clipping` to the finished mixture.
    """
    background = np.asarray(background, dtype=np.float32)
    reference = background if reference is None else np.asarray(reference)
    if len(reference) != len(background):
        raise ValueError("reference and background differ in length")
    length = len(background)
    if len(event) == 0:
        raise ValueError("empty event")
    if not 0 <= onset_samples < length:
        raise ValueError(f"onset {onset_samples} is outside a background of {length} samples")
    offset = min(length, onset_samples + len(event))
    cropped = np.asarray(event)[: offset - onset_samples]
    scaled = scale_to_ebr(cropped, reference[onset_samples:offset], ebr_db)
    mixture = background.copy()
    mixture[onset_samples:offset] += scaled
    return mixture, (onset_samples, offset)


def clipping_gain(mixture: np.ndarray, peak: float = DEFAULT_PEAK) -> float:
    """Gain (<= 1) that brings the mixture's absolute peak down to `peak`; 1.0 when it fits."""
    top = float(np.max(np.abs(mixture))) if len(mixture) else 0.0
    return peak / top if top > peak else 1.0


def prevent_clipping(mixture: np.ndarray, peak: float = DEFAULT_PEAK) -> np.ndarray:
    """The whole mixture scaled down (all sources alike, so every ratio is kept) when its
    peak exceeds `peak`; unchanged otherwise. Returns float32."""
    gain = clipping_gain(mixture, peak)
    out = np.asarray(mixture, dtype=np.float32)
    return (out * np.float32(gain)).astype(np.float32) if gain < 1.0 else out.copy()


def loop_to_length(x: np.ndarray, length: int, shift: int = 0) -> np.ndarray:
    """`x` repeated end to end to `length` samples, rotated left by `shift` samples."""
    if len(x) == 0:
        raise ValueError("cannot loop an empty signal")
    idx = (np.arange(length) + shift) % len(x)
    return np.asarray(x)[idx]


def events_background(
    bank: Sequence[np.ndarray],
    length: int,
    rng: np.random.Generator | int | None = None,
    n_layers: int = 4,
    gain_range_db: tuple[float, float] = (-6.0, 0.0),
) -> np.ndarray:
    """A background made of other events, at unit RMS (float32).

    Sums `n_layers` events drawn from `bank` (without replacement while the bank allows),
    each looped to `length`, time-shifted by a random rotation and given a random gain
    in `gain_range_db`, so the layers overlap everywhere and there is no silent gap.
    Raises ValueError for an empty bank or a silent sum.
    """
    if len(bank) == 0:
        raise ValueError("no events to build a background from")
    rng = _as_rng(rng)
    picks = rng.choice(len(bank), size=n_layers, replace=n_layers > len(bank))
    total = np.zeros(length, dtype=np.float64)
    for i in picks:
        layer = np.asarray(bank[int(i)], dtype=np.float64)
        shift = int(rng.integers(len(layer))) if len(layer) else 0
        gain = db_to_gain(float(rng.uniform(*gain_range_db)))
        level = rms(layer)
        if level > 0.0:
            total += loop_to_length(layer, length, shift) * (gain / level)
    level = rms(total)
    if level == 0.0:
        raise ValueError("the events of the background are silent")
    return (total / level).astype(np.float32)
