"""What every benchmark result records, so that a figure can be traced: the commit it ran on (and
whether the tree had changes), the machine, the command, and the model with its checkpoint's
SHA-256. Paths are given relative to the repository."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def relative(path: str | Path) -> str:
    """``path`` relative to the repository when inside it, else its name only (links are not
    followed: ``data/real`` stays ``data/real`` when ``data`` links elsewhere)."""
    resolved = Path(os.path.abspath(path))
    return resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else resolved.name


def provenance(checkpoint: str | Path | None = None, model_version: str | None = None) -> dict[str, Any]:
    """The ``provenance`` block of a result file."""
    record: dict[str, Any] = {
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "tree_changed": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([".venv/bin/python", relative(sys.argv[0]), *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    if checkpoint is not None:
        record["model"] = {"version": model_version, "checkpoint": relative(checkpoint),
                           "sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()}
    return record
