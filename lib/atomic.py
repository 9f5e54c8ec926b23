"""Atomic file replacement (readers see the old file or the new one, never a partial one)
and the JSON sidecars written that way; an exclusive lock on a folder shared by processes."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same folder, so the rename is atomic) to
    write to; on success it replaces ``path``, on any failure it is removed and ``path``
    is untouched. ``suffix`` keeps writers that choose the format by extension happy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any, indent: int = 1, allow_nan: bool = True) -> None:
    """Write ``obj`` as JSON to ``path`` atomically and durably (fsync before the rename).
    ``allow_nan=False``: a NaN or infinity raises ``ValueError`` and leaves ``path`` untouched."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, default=str, allow_nan=allow_nan)
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; an empty dict when it is missing or unreadable (metadata
    sidecars are optional: a damaged one must not make its image or label unreadable)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


@contextmanager
def locked_folder(folder: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (created if missing; no lock file is left
    behind), held by this process until the body ends. Not re-entrant: a second hold in the
    same process, even through another call, waits for ever."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
