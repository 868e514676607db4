"""Feature extraction speed: listenloop against calling openSMILE directly, same files, same run.

Real-time factor = seconds of audio per wall-clock second, one process, no cache. The peer
is the documented way to use openSMILE from Python: one `opensmile.Smile(...)` and
`process_file` per file. The values of both are compared as well (they should be equal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from listenloop.errors import ListenloopError
from listenloop.features import get_extractor, opensmile_sets
from listenloop.features.extraction import default_workers, extract_features, files_dataset

#: listenloop set name -> opensmile.FeatureSet member name, for the sets openSMILE computes.
OPENSMILE_PEERS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


def _readable_with_duration(paths: list[Path]) -> tuple[list[int], float]:
    """Indices of files soundfile can open with samples, and their total duration (s)."""
    keep, total = [], 0.0
    for i, p in enumerate(paths):
        try:
            info = sf.info(str(p))
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue
        if info.frames > 0:
            keep.append(i)
            total += info.frames / info.samplerate
    return keep, total


def _opensmile_loop(feature_set: str, paths: list[Path]) -> tuple[float, np.ndarray]:
    import opensmile

    start = time.perf_counter()
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet[feature_set], feature_level=opensmile.FeatureLevel.Functionals
    )
    rows = [smile.process_file(str(p)).to_numpy(dtype=np.float32)[0] for p in paths]
    return time.perf_counter() - start, np.stack(rows)


def run_features_bench(
    dataset: str | Path,
    sets: list[str],
    *,
    limit: int | None = None,
    repeats: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time each feature set on up to `limit` files of `dataset` (spread evenly over its list).

    Returns {"dataset", "files", "audio_seconds", "cpus", "rows": [...]}, a row per set with
    both sides' seconds (best of `repeats`) and real-time factors, their ratio, and the
    largest relative difference between the two sides' values.
    """
    say = progress or (lambda line: None)
    extractors = [get_extractor(s) for s in sets]
    ds = files_dataset(dataset)
    if limit is not None and limit < len(ds):
        ds = ds.subset(np.unique(np.linspace(0, len(ds) - 1, limit).round().astype(int)))
    keep, audio_s = _readable_with_duration(ds.paths())
    if not keep:
        raise ListenloopError(f"{dataset}: no readable audio among the {len(ds)} files")
    ds = ds.subset(np.array(keep))
    paths = ds.paths()
    for p in paths:  # warm the page cache so that neither side pays the first read
        p.read_bytes()
    import opensmile  # noqa: F401  (both sides then start with the module imported)

    rows = []
    for ext in extractors:
        say(f"{ext.name}: listenloop on {len(paths)} files ...")
        ll_best, X = float("inf"), None
        for _ in range(repeats):
            opensmile_sets.free_instances()  # every run pays openSMILE's set-up, as a new process would
            table = extract_features(ds, ext, workers=1, use_cache=False, progress=False, log=lambda m: None)
            ll_best, X = min(ll_best, table.seconds), table
        row: dict[str, Any] = {
            "set": ext.name,
            "files": len(X),
            "audio_s": round(audio_s, 3),
            "listenloop_s": round(ll_best, 4),
            "listenloop_rtf": round(audio_s / ll_best, 2),
            "opensmile_s": None,
            "opensmile_rtf": None,
            "ratio": None,
            "max_rel_diff": None,
        }
        peer = OPENSMILE_PEERS.get(ext.name)
        if peer is not None:
            say(f"{ext.name}: opensmile.Smile.process_file on {len(paths)} files ...")
            os_best, Y = float("inf"), None
            for _ in range(repeats):
                seconds, Y = _opensmile_loop(peer, [paths[i] for i in X.kept])
                os_best = min(os_best, seconds)
            mine = np.asarray(X.X, dtype=np.float64)
            diff = np.abs(mine - Y) / np.maximum(np.abs(Y), 1e-6)
            row.update(
                opensmile_s=round(os_best, 4),
                opensmile_rtf=round(audio_s / os_best, 2),
                ratio=round(os_best / ll_best, 3),
                max_rel_diff=float(np.nanmax(diff)) if diff.size else 0.0,
            )
        rows.append(row)
    return {
        "dataset": str(dataset),
        "files": len(paths),
        "audio_seconds": round(audio_s, 3),
        "cpus": default_workers(),
        "workers": 1,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width table of `run_features_bench`'s rows, with a header line."""
    head = (
        f"{result['files']} files, {result['audio_seconds']:.1f} s of audio, 1 worker, no cache "
        f"(rtf = audio seconds per wall second; ratio = listenloop rtf / opensmile rtf)"
    )
    cols = ["set", "listenloop_s", "listenloop_rtf", "opensmile_s", "opensmile_rtf", "ratio", "max_rel_diff"]
    lines = [head, "  ".join(f"{c:>14}" for c in cols)]
    for row in result["rows"]:
        cells = []
        for c in cols:
            v = row[c]
            if v is None:
                cells.append(f"{'-':>14}")
            elif c == "max_rel_diff":
                cells.append(f"{v:>14.2e}")
            elif isinstance(v, float):
                cells.append(f"{v:>14.2f}" if c != "ratio" else f"{v:>13.2f}x")
            else:
                cells.append(f"{v!s:>14}")
        lines.append("  ".join(cells))
    return "\n".join(lines)
