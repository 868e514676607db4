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
            "random,margin,mal_pann",
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


def test_dal_without_torch_names_the_extra_to_install(fsdd_dir: Path, tmp_path: Path) -> None:
    """DAL and the pann features say which extra to install, in one line, before any work."""
    base = ["--initial", "10", "--batch", "10", "--iterations", "1", "--runs", "1", "--quiet"]
    for extra in (["--strategies", "random,dal"], ["--features", "pann", "--checkpoint", str(tmp_path)]):
        args = ["simulate", str(fsdd_dir), *base, "--out", str(tmp_path / "o"), *extra]
        proc = subprocess.run(
            [sys.executable, "-c", BLOCKED, *args], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode != 0
        assert "pip install 'listenloop[deep]'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
