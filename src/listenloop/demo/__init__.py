"""The demo project's data: 300 FSDD spoken digits (CC BY-SA 4.0, see fsdd/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).parent / "fsdd"
"""Folder with `recordings/*.flac` and `labels.csv` (file,label,speaker)."""
