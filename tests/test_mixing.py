"""Mixing maths (coloured noise, EBR scaling, placement, peak safety) and `listenloop mix`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from listenloop.audio.mixing import (
    active_span,
    coloured_noise,
    events_background,
    loop_to_length,
    mix_event,
    place,
    prevent_clipping,
    rms,
    scale_to_ebr,
    trim_silence,
)
from listenloop.cli import main


def _ebr_db(event: np.ndarray, background: np.ndarray) -> float:
    return 20 * np.log10(rms(event) / rms(background))


def _slope_db_per_octave(x: np.ndarray) -> float:
    """Least-squares slope of the Welch PSD in dB against log2(frequency), mid band."""
    freqs, psd = welch(x.astype(np.float64), fs=1.0, nperseg=4096)
    band = (freqs >= 1 / 512) & (freqs <= 1 / 4)
    slope, _ = np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)
    return float(slope)


@pytest.mark.parametrize(
    ("colour", "expected"), [("white", 0.0), ("pink", -3.01), ("brown", -6.02), ("blue", 3.01)]
)
def test_coloured_noise_slope_and_unit_rms(colour: str, expected: float) -> None:
    x = coloured_noise(2**18, colour, np.random.default_rng(1))
    assert x.dtype == np.float32 and x.shape == (2**18,)
    assert rms(x) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(x.mean())) < 0.05
    assert _slope_db_per_octave(x) == pytest.approx(expected, abs=0.2)


def test_coloured_noise_is_seeded_and_checks_its_arguments() -> None:
    a = coloured_noise(1000, "pink", np.random.default_rng(3))
    b = coloured_noise(1000, "pink", np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, coloured_noise(1000, "pink", np.random.default_rng(4)))
    with pytest.raises(ValueError, match="colour"):
        coloured_noise(100, "purple", np.random.default_rng(0))
    with pytest.raises(ValueError):
        coloured_noise(0, "white", np.random.default_rng(0))


@pytest.mark.parametrize("ebr", [-20.0, -7.25, 0.0, 3.333, 20.0])
def test_scale_to_ebr_reaches_the_ratio(ebr: float) -> None:
    rng = np.random.default_rng(0)
    event = (0.3 * np.sin(np.linspace(0, 400, 8000)) * np.hanning(8000)).astype(np.float32)
    background = coloured_noise(8000, "pink", rng) * np.float32(0.05)
    scaled = scale_to_ebr(event, background, ebr)
    assert scaled.dtype == np.float32
    assert _ebr_db(scaled, background) == pytest.approx(ebr, abs=0.01)


def test_scale_to_ebr_refuses_silence() -> None:
    with pytest.raises(ValueError, match="silent"):
        scale_to_ebr(np.zeros(10), np.ones(10), 0.0)
    with pytest.raises(ValueError, match="silent"):
        scale_to_ebr(np.ones(10), np.zeros(10), 0.0)


def test_place_pads_and_crops() -> None:
    event = np.arange(1, 6, dtype=np.float32)
    placed = place(event, 10, 3)
    assert placed.tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 0, 0]
    assert place(event, 6, 4).tolist() == [0, 0, 0, 0, 1, 2]
    with pytest.raises(ValueError):
        place(event, 6, 6)


def test_mix_event_span_and_ratio() -> None:
    rng = np.random.default_rng(2)
    background = coloured_noise(16000, "brown", rng) * np.float32(0.01)
    event = coloured_noise(4000, "white", rng) * np.hanning(4000).astype(np.float32)
    mixture, (onset, offset) = mix_event(background, event, 5000, -6.5)
    assert (onset, offset) == (5000, 9000)
    assert mixture.shape == background.shape and mixture.dtype == np.float32
    added = mixture.astype(np.float64) - background
    assert np.all(added[:onset] == 0) and np.all(added[offset:] == 0)
    assert _ebr_db(added[onset:offset], background[onset:offset]) == pytest.approx(-6.5, abs=0.01)
    # An event running past the end is cropped; the ratio holds over what remains.
    mixture, (onset, offset) = mix_event(background, event, 14000, 10.0)
    assert (onset, offset) == (14000, 16000)
    added = mixture.astype(np.float64) - background
    assert _ebr_db(added[onset:], background[onset:]) == pytest.approx(10.0, abs=0.01)


def test_mix_event_against_a_separate_reference() -> None:
    rng = np.random.default_rng(5)
    background = coloured_noise(8000, "pink", rng)
    first, _ = mix_event(background, np.ones(2000, dtype=np.float32), 1000, 0.0)
    second, (onset, offset) = mix_event(
        first, np.ones(2000, dtype=np.float32), 1500, 3.0, reference=background
    )
    added = second.astype(np.float64) - first
    assert _ebr_db(added[onset:offset], background[onset:offset]) == pytest.approx(3.0, abs=0.01)


def test_prevent_clipping_keeps_ratio() -> None:
    rng = np.random.default_rng(7)
    background = coloured_noise(8000, "white", rng) * np.float32(0.5)
    mixture, _ = mix_event(background, np.ones(1000, dtype=np.float32), 2000, 20.0)
    assert np.max(np.abs(mixture)) > 1.0
    safe = prevent_clipping(mixture)
    assert np.max(np.abs(safe)) <= 0.99 + 1e-6
    gain = safe[0] / mixture[0]
    np.testing.assert_allclose(safe, mixture * gain, rtol=1e-5, atol=1e-7)
    quiet = np.full(10, 0.5, dtype=np.float32)
    assert np.array_equal(prevent_clipping(quiet), quiet)


def test_events_background_loops_and_has_unit_rms() -> None:
    rng = np.random.default_rng(0)
    bank = [np.sin(np.arange(n) / 3.0).astype(np.float32) for n in (300, 500, 700)]
    bg = events_background(bank, 5000, rng, n_layers=3)
    assert bg.dtype == np.float32 and bg.shape == (5000,)
    assert rms(bg) == pytest.approx(1.0, abs=1e-5)
    assert loop_to_length(np.array([1, 2, 3]), 7, shift=1).tolist() == [2, 3, 1, 2, 3, 1, 2]
    with pytest.raises(ValueError):
        events_background([], 100, rng)


def test_trim_silence() -> None:
    x = np.zeros(1000, dtype=np.float32)
    x[300:520] = 0.5
    assert active_span(x, -60.0, frame=100) == (300, 600)
    assert len(trim_silence(x, -60.0, frame=100)) == 300
    assert active_span(np.zeros(50), -60.0) == (0, 0)


# --- listenloop mix -------------------------------------------------------------------


def _event_dataset(root: Path) -> Path:
    """Three tiny events at 22.05 kHz: a tone, a noise burst, a long chirp (cropped at 1 s)."""
    sr = 22050
    rng = np.random.default_rng(0)
    (root / "events").mkdir(parents=True)
    t = np.arange(int(0.4 * sr)) / sr
    tone = 0.25 * np.sin(2 * np.pi * 440 * t) * np.hanning(len(t))
    burst = 0.2 * rng.standard_normal(int(0.2 * sr))
    t_long = np.arange(int(1.5 * sr)) / sr
    chirp = 0.25 * np.sin(2 * np.pi * (200 + 300 * t_long) * t_long)
    rows = [("events/tone.wav", "0"), ("events/burst.wav", "burst"), ("events/chirp.wav", "chirp")]
    for (name, _), signal in zip(rows, (tone, burst, chirp), strict=True):
        sf.write(root / name, signal, sr, subtype="PCM_16")
    (root / "labels.csv").write_text("file,label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    (root / "README.md").write_text("# Test events\n\nSource: made in the test. Credit nobody.\n")
    return root


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_mix_cli_writes_the_dataset(tmp_path: Path) -> None:
    src = _event_dataset(tmp_path / "src")
    out = tmp_path / "out"
    args = ["mix", str(src), str(out), "--clips", "12", "--duration", "1.0", "--sample-rate", "8000"]
    assert _run([*args, "--background", "mixed", "--seed", "3"]) == 0
    rows = _read_rows(out)
    assert len(rows) == 12
    assert list(rows[0]) == ["file", "ebr", "label", "event", "onset", "offset", "background"]
    for row in rows:
        info = sf.info(out / row["file"])
        assert (info.samplerate, info.frames, info.subtype, info.channels) == (8000, 8000, "PCM_16", 1)
        assert -20.0 <= float(row["ebr"]) <= 20.0 and row["ebr"] == f"{float(row['ebr']):.3f}"
        onset, offset = float(row["onset"]), float(row["offset"])
        assert 0.0 <= onset < offset <= 1.0
        assert row["label"] == {"events/tone.wav": "0", "events/burst.wav": "burst"}.get(
            row["event"], "chirp"
        )
        if row["event"] == "events/chirp.wav":  # 1.5 s, cropped to the clip
            assert (onset, offset) == (0.0, 1.0)
        if row["event"] == "events/burst.wav":
            assert offset - onset == pytest.approx(0.2, abs=0.002)
        assert row["background"] in {"white", "pink", "brown", "events"}
        audio, _ = sf.read(out / row["file"])
        assert np.max(np.abs(audio)) <= 0.99 + 1e-4
    assert len({r["ebr"] for r in rows}) == 12
    readme = (out / "README.md").read_text()
    assert "--seed 3" in readme and "Credit nobody" in readme and "--background mixed" in readme


def test_mix_cli_same_seed_same_bytes(tmp_path: Path) -> None:
    src = _event_dataset(tmp_path / "src")
    args = ["--clips", "5", "--duration", "0.5", "--sample-rate", "8000", "--seed", "11"]
    assert _run(["mix", str(src), str(tmp_path / "a"), *args]) == 0
    assert _run(["mix", str(src), str(tmp_path / "b"), *args]) == 0
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 7
    for name in a:
        if name != "README.md":  # the README records the output path, which differs
            assert a[name] == b[name], name
    assert a["README.md"].replace(b"/a ", b"/b ") == b["README.md"]
    assert _run(["mix", str(src), str(tmp_path / "c"), *args[:-1], "12"]) == 0
    assert _tree(tmp_path / "c")["labels.csv"] != a["labels.csv"]


def test_mix_cli_refuses_existing_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _event_dataset(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    args = ["mix", str(src), str(out), "--clips", "3", "--duration", "0.5", "--sample-rate", "8000"]
    assert _run(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _run([*args, "--force"]) == 0
    assert (out / "keep.txt").read_text() == "precious" and len(_read_rows(out)) == 3
    assert _run([*args[:4], "2", *args[5:], "--force"]) == 0  # fewer clips: no stale files left
    assert len(list((out / "clips").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ebr-range=5,1"], "--ebr-range"),
        (["--ebr-range=abc"], "--ebr-range"),
        (["--background", "purple"], "--background"),
        (["--clips", "0"], "--clips"),
        (["--duration", "-1"], "--duration"),
    ],
)
def test_mix_cli_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    src = _event_dataset(tmp_path / "src")
    out = tmp_path / "out"
    assert _run(["mix", str(src), str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_mix_cli_bad_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _event_dataset(tmp_path / "src")
    (src / "labels.csv").write_text("file,label\nevents/tone.wav,0\nevents/missing.wav,x\n")
    out = tmp_path / "out"
    assert _run(["mix", str(src), str(out), "--clips", "2"]) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert not out.exists()
    (src / "labels.csv").write_text("file,kind\nevents/tone.wav,0\n")
    assert _run(["mix", str(src), str(out), "--clips", "2"]) == 2
    assert "'label'" in capsys.readouterr().err
    assert _run(["mix", str(src), str(src), "--clips", "2", "--force"]) == 2
    assert (src / "labels.csv").read_text() == "file,kind\nevents/tone.wav,0\n"
