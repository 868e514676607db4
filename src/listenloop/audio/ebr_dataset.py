"""A regression dataset with a target not computed from features: event-to-background ratio.

Isolated sound events are mixed over a background (coloured noise or other events) at an
event-to-background ratio (EBR) drawn uniformly at random; the ratio in dB is the target.
`make_ebr_dataset` writes `clips/*.wav` (16-bit), `labels.csv` and `README.md`; it is what
`listenloop mix` runs. Clip i draws from its own random stream (seed, i), so the same seed
gives byte-identical files and a smaller `clips` gives a prefix of a larger one.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from listenloop.audio.io import load_audio
from listenloop.audio.mixing import (
    DEFAULT_PEAK,
    NOISE_COLOURS,
    coloured_noise,
    db_to_gain,
    events_background,
    mix_event,
    prevent_clipping,
    trim_silence,
)
from listenloop.datasets import LABELS_FILE, read_table
from listenloop.errors import ListenloopError

#: Background kinds: a noise colour, "events" (other events looped) or "mixed" (one of
#: white/pink/brown/events drawn per clip).
BACKGROUNDS = (*NOISE_COLOURS, "events", "mixed")
MIXED_CHOICES = ("white", "pink", "brown", "events")
COLUMNS = ("file", "ebr", "label", "event", "onset", "offset", "background")
CLIPS_DIR = "clips"
README_FILE = "README.md"
#: Events quieter than this below their loudest 10 ms frame are trimmed at both ends.
TRIM_DB = -60.0
#: Number of looped events layered in an "events" background.
EVENT_LAYERS = 4


@dataclass
class MixSummary:
    """What `make_ebr_dataset` wrote: where, how many clips, and the labels table rows."""

    out: Path
    clips: int
    rows: list[dict[str, str]]


def parse_range(text: str, name: str) -> tuple[float, float]:
    """'LO,HI' (dB) as two floats with LO <= HI; ListenloopError naming `name` otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        raise ListenloopError(f"{name}: '{text}' is not LO,HI (two numbers, e.g. -20,20)")
    if lo > hi:
        raise ListenloopError(f"{name}: low end {lo:g} is above high end {hi:g}")
    return lo, hi


def _check_params(
    clips: int, ebr_range: tuple[float, float], background: str, duration: float, sample_rate: int, seed: int
) -> None:
    if clips < 1:
        raise ListenloopError(f"--clips: must be at least 1, got {clips}")
    if ebr_range[0] > ebr_range[1]:
        raise ListenloopError(f"--ebr-range: low end {ebr_range[0]:g} is above high end {ebr_range[1]:g}")
    if background not in BACKGROUNDS:
        raise ListenloopError(f"--background: unknown '{background}' (one of {'|'.join(BACKGROUNDS)})")
    if not (np.isfinite(duration) and duration > 0):
        raise ListenloopError(f"--duration: must be a positive number of seconds, got {duration}")
    if not 1000 <= sample_rate <= 384000:
        raise ListenloopError(f"--sample-rate: {sample_rate} Hz is outside 1000..384000")
    if int(duration * sample_rate) < 1:
        raise ListenloopError(f"--duration: {duration} s is shorter than one sample")
    if seed < 0:
        raise ListenloopError(f"--seed: must be zero or positive, got {seed}")


def _check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse an OUT that would overwrite data: non-empty without `force`, or the source."""
    if out.exists() and not out.is_dir():
        raise ListenloopError(f"{out}: exists and is not a folder")
    src = source.resolve()
    dst = out.resolve()
    if dst == src or src.is_relative_to(dst / CLIPS_DIR):
        raise ListenloopError(f"{out}: would overwrite the source dataset {source}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ListenloopError(
            f"{out}: exists and is not empty (use --force to replace its clips/, labels.csv and README.md)"
        )


def load_events(
    source: Path, sample_rate: int, progress: bool
) -> tuple[list[str], list[str], list[np.ndarray]]:
    """Files, labels and decoded (trimmed, mono, resampled) events of the source dataset."""
    table = read_table(source)
    csv_path = source / LABELS_FILE
    if "label" not in table.columns:
        raise ListenloopError(f"{csv_path}: no 'label' column (columns: {', '.join(table.columns)})")
    table = table[table["label"].str.strip() != ""].reset_index(drop=True)
    if table.empty:
        raise ListenloopError(f"{csv_path}: no labelled events")
    files = table["file"].tolist()
    labels = table["label"].tolist()
    signals = []
    for f in tqdm(files, desc="loading events", unit="file", disable=not progress, leave=False):
        signal, _ = load_audio(source / f, sample_rate)
        trimmed = trim_silence(signal, TRIM_DB, frame=max(1, sample_rate // 100))
        if trimmed.size == 0:
            raise ListenloopError(f"{source / f}: silent (all samples are zero)")
        signals.append(trimmed)
    return files, labels, signals


def _readme(
    command: str,
    source: Path,
    clips: int,
    ebr_range: tuple[float, float],
    background: str,
    background_dbfs: tuple[float, float],
    duration: float,
    sample_rate: int,
    seed: int,
) -> str:
    """README.md of the mixture dataset: how it was made, the columns, the source's credits."""
    kinds = "/".join(MIXED_CHOICES) if background == "mixed" else background
    lines = [
        "# Event-to-background ratio (EBR) mixtures",
        "",
        f"{clips} clips of {duration:g} s, mono, {sample_rate} Hz, 16-bit WAV, made by listenloop:",
        "",
        "```",
        command,
        "```",
        "",
        f"Seed {seed}: the same command gives byte-identical files.",
        "",
        "Each clip places one event from the source dataset, picked uniformly at random,",
        "at a random onset such that it fits in the clip (an event longer than the clip is",
        f"cropped to its first {duration:g} s), over a background ({kinds}, one kind per",
        f"clip) at a random RMS level in [{background_dbfs[0]:g}, {background_dbfs[1]:g}] dBFS.",
        f"The event is scaled to an EBR drawn uniformly in [{ebr_range[0]:g}, {ebr_range[1]:g}] dB,",
        "rounded to 3 decimals. Coloured noise has power ~ 1/f^alpha (white 0, pink 1, brown 2);",
        f'an "events" background is {EVENT_LAYERS} other events (of other classes where there are',
        "any), each looped to the clip length with a random time shift and gain, summed.",
        "Events are trimmed of leading and trailing silence (frames 60 dB below the loudest)",
        "first. Where a mixture would clip, the whole clip is scaled down to a",
        f"{DEFAULT_PEAK:g} peak, which keeps the ratio.",
        "",
        "EBR definition: 20 log10(rms(event) / rms(background)), both RMS over the event's",
        "span in the clip (onset to offset).",
        "",
        "## labels.csv",
        "",
        "- `file`: the clip, relative to this folder",
        "- `ebr`: the event-to-background ratio in dB (the regression target)",
        "- `label`: the event's class",
        "- `event`: the event's file in the source dataset",
        "- `onset`, `offset`: the event's span in the clip, seconds",
        "- `background`: the background kind of the clip",
        "",
        "Use it as a regression dataset: `--task regression --label-column ebr`.",
        "",
        "## Source",
        "",
        f"Events from `{source}`. Its README, for attribution:",
        "",
    ]
    readme = source / README_FILE
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace").rstrip()
        lines += [f"> {line}".rstrip() for line in text.splitlines()]
    else:
        lines.append("> (the source folder has no README.md; credit its authors as they ask)")
    return "\n".join(lines) + "\n"


def _commit(tmp: Path, out: Path) -> None:
    """Move the finished dataset from `tmp` into `out`, replacing only what this writes."""
    if not out.exists():
        tmp.rename(out)
        return
    for name in (CLIPS_DIR, LABELS_FILE, README_FILE):
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        (tmp / name).rename(old)
    tmp.rmdir()


def make_ebr_dataset(
    source: str | Path,
    out: str | Path,
    clips: int = 400,
    ebr_range: tuple[float, float] = (-20.0, 20.0),
    background: str = "pink",
    duration: float = 3.0,
    sample_rate: int = 16000,
    seed: int = 0,
    background_dbfs: tuple[float, float] = (-40.0, -20.0),
    force: bool = False,
    progress: bool = False,
    command: str | None = None,
) -> MixSummary:
    """Write an EBR mixture dataset from the event dataset `source` into `out`.

    Everything is checked and every event decoded before anything is written; the clips
    are made in a temporary folder beside `out` and moved in at the end, so a failure
    leaves `out` as it was. `out` must be missing or empty unless `force`, which replaces
    its clips/, labels.csv and README.md (and nothing else). `background_dbfs` is the
    range of the background's RMS level, drawn per clip, so that loudness alone does not
    give the ratio away. `command` is recorded in the README (default: the equivalent
    `listenloop mix` command line).
    """
    source = Path(source)
    out = Path(out)
    _check_params(clips, ebr_range, background, duration, sample_rate, seed)
    if background_dbfs[0] > background_dbfs[1] or background_dbfs[1] > 0:
        raise ListenloopError(f"background level range {background_dbfs} must be LO <= HI <= 0 dBFS")
    _check_out(out, source, force)
    files, labels, signals = load_events(source, sample_rate, progress)
    needs_events = background in ("events", "mixed")
    if needs_events and len(signals) < 2:
        raise ListenloopError(f"--background {background}: needs at least 2 events in {source}")
    # For each event, the bank its "events" background draws from: other classes if any.
    by_other_class = {lab: [j for j, other in enumerate(labels) if other != lab] for lab in set(labels)}

    length = round(duration * sample_rate)
    if command is None:
        command = (
            f"listenloop mix {source} {out} --clips {clips} --ebr-range={ebr_range[0]:g},{ebr_range[1]:g}"
            f" --background {background} --duration {duration:g} --sample-rate {sample_rate} --seed {seed}"
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / CLIPS_DIR).mkdir()
        rows: list[dict[str, str]] = []
        width = max(5, len(str(clips - 1)))
        for i in tqdm(range(clips), desc="mixing", unit="clip", disable=not progress):
            rng = np.random.default_rng([seed, i])
            k = int(rng.integers(len(signals)))
            ebr = round(float(rng.uniform(*ebr_range)), 3)
            kind = str(rng.choice(MIXED_CHOICES)) if background == "mixed" else background
            level = float(rng.uniform(*background_dbfs))
            if kind == "events":
                bank_idx = by_other_class[labels[k]] or [j for j in range(len(signals)) if j != k]
                bg = events_background([signals[j] for j in bank_idx], length, rng, EVENT_LAYERS)
            else:
                bg = coloured_noise(length, kind, rng)
            bg = bg * np.float32(db_to_gain(level))
            event = signals[k][:length]
            onset = int(rng.integers(length - len(event) + 1))
            try:
                mixture, (on, off) = mix_event(bg, event, onset, ebr)
            except ValueError as exc:
                raise ListenloopError(f"{source / files[k]}: {exc}") from exc
            mixture = prevent_clipping(mixture, DEFAULT_PEAK)
            pcm = np.round(np.clip(mixture, -1.0, 1.0) * 32767.0).astype(np.int16)
            name = f"{CLIPS_DIR}/mix{i:0{width}d}.wav"
            wav = io.BytesIO()  # encode in memory: libsndfile syncs to disk on close, slow
            sf.write(wav, pcm, sample_rate, subtype="PCM_16", format="WAV")
            (tmp / name).write_bytes(wav.getvalue())
            rows.append(
                {
                    "file": name,
                    "ebr": f"{ebr:.3f}",
                    "label": labels[k],
                    "event": files[k],
                    "onset": f"{on / sample_rate:.3f}",
                    "offset": f"{off / sample_rate:.3f}",
                    "background": kind,
                }
            )
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (tmp / LABELS_FILE).write_text(buffer.getvalue(), encoding="utf-8")
        (tmp / README_FILE).write_text(
            _readme(
                command, source, clips, ebr_range, background, background_dbfs, duration, sample_rate, seed
            ),
            encoding="utf-8",
        )
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MixSummary(out=out, clips=clips, rows=rows)
