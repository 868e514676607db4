"""Rows that engine and request-path tests insert directly, without uploading audio."""

from __future__ import annotations

from typing import Any

from listenloop.store.models import Clip


def queued_clip(project_id: int, i: int, **fields: Any) -> Clip:
    """Clip `i` of a project: queued at rank i, 1 s at 8 kHz, a made-up hash and path (no
    audio behind it); `fields` override any column (is_gold, gold_label, status, ...)."""
    row: dict[str, Any] = {
        "project_id": project_id,
        "file_name": f"c{i}.wav",
        "sha256": f"{i:064d}",
        "path": f"audio/{i}.wav",
        "duration": 1.0,
        "sample_rate": 8000,
        "status": "queued",
        "rank": float(i),
    }
    return Clip(**{**row, **fields})
