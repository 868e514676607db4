"""The base install stays torch-free: the non-deep commands run with torch blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCKED = "import sys; sys.modules['torch'] = None; from listenloop.cli import main; main()"


def test_commands_run_with_torch_blocked(fsdd_dir: Path, tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["simulate", "--help"],
        ["features", "--help"],
        ["bench", "query", "--help"],
        [
            "simulate",
            str(fsdd_dir),
            "--features",
            "mfcc",
            "--strategies",
            "random,margin",
            "--initial",
            "10",
            "--batch",
            "10",
            "--iterations",
            "1",
            "--runs",
            "1",
            "--cache-dir",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", BLOCKED, *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, (args, proc.stderr)
