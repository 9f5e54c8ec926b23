"""The model registry: every version the server has trained or served, and which one it serves.

Each training run registers its best epoch, published or kept as a candidate, with its
validation Dice, the served model's Dice on the same cases, the final labels it was trained
on (study and label version) and the model it started from. The bundled model is registered
the first time the registry is read. An ML admin can serve any registered version again
(a rollback, or a candidate promoted by hand); the file is copied over the served checkpoint
in one atomic step, so inference switches on its next request, without a restart.

Layout in the model folder::

    <name>.pt                the served checkpoint (what inference loads)
    versions/<version>.pt    a copy of every registered version
    registry.json            the entries and the history of what was served when

The registry is shared by the server and its training process: every change holds an
exclusive ``flock`` on the model folder.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib.atomic import atomic_path, locked_folder, read_json, write_json
from lib.errors import UnknownIdError

from .checkpoint import read_checkpoint_record

PUBLISHED, CANDIDATE, BUNDLED = "published", "candidate", "bundled"

#: The model the repository ships (served when no trained one loads).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[2] / "monailabel_app" / "model" / "brats_segresnet.pt"


def previous_path(checkpoint_path: str | Path) -> Path:
    """Where the model a publication replaced is kept (served when the new one cannot be loaded)."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".previous" + path.suffix)


def served_checkpoints(trained: Path, bundled: Path = BUNDLED_CHECKPOINT) -> list[Path]:
    """What a server or a job worker serves, in order: the newest trained model, the one it
    replaced, then the bundled one (the first that loads)."""
    return [trained, previous_path(trained), bundled]


@dataclass
class ModelVersion:
    """One registered model. ``status``: published (was served after its run), candidate (kept,
    not served: it was worse on validation) or bundled; ``validation_dice``: per region on the
    fixed validation cases, ``served_dice``: the model served at the time on the same cases;
    ``labels``: ``{study: final label version}`` of the run, training and validation cases
    (``validation_cases`` names the latter); ``parent``: the version it was fine-tuned from
    (None: trained from scratch)."""

    version: str
    status: str
    created: str
    sha256: str
    file: str
    parent: str | None = None
    validation_dice: dict[str, float] = field(default_factory=dict)
    served_dice: dict[str, float] = field(default_factory=dict)
    labels: dict[str, int | None] = field(default_factory=dict)
    validation_cases: list[str] = field(default_factory=list)
    reason: str = ""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_name(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", version) + ".pt"


class ModelRegistry:
    """The versions of one model in ``model_dir``; ``served_path`` is the checkpoint inference
    loads first, ``bundled_path`` the model shipped with the app."""

    def __init__(self, model_dir: str | Path, served_path: str | Path, bundled_path: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.served_path = Path(served_path)
        self.bundled_path = Path(bundled_path)
        self.path = self.model_dir / "registry.json"

    def register(self, checkpoint: str | Path, status: str, *, labels: dict[str, int | None] | None = None,
                 validation_dice: dict[str, float] | None = None, served_dice: dict[str, float] | None = None,
                 validation_cases: list[str] | None = None, reason: str = "") -> ModelVersion:
        """Copy ``checkpoint`` into the registry and record it (its version from the file)."""
        version, training = read_checkpoint_record(checkpoint)
        init_from = training.get("config", {}).get("init_from")
        entry = ModelVersion(version=version, status=status, created=_now(), sha256=_sha256(Path(checkpoint)),
                             file=f"versions/{_file_name(version)}",
                             parent=self._version_of(Path(init_from)) if init_from else None,
                             validation_dice=dict(validation_dice or {}), served_dice=dict(served_dice or {}),
                             labels=dict(labels or {}), validation_cases=list(validation_cases or []), reason=reason)
        with self._locked() as state:
            self._ensure_bundled(state)
            self._copy_in(Path(checkpoint), entry.file)
            state["versions"][entry.version] = asdict(entry)
            if status == PUBLISHED:
                state["history"].append({"time": entry.created, "version": entry.version, "by": "training",
                                         "reason": reason})
        return entry

    def versions(self) -> list[ModelVersion]:
        """All registered versions, oldest first (the bundled model first of all)."""
        return self.snapshot()[0]

    def history(self) -> list[dict[str, Any]]:
        """What was served from when, and who chose it (``training`` or a user)."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[list[ModelVersion], list[dict[str, Any]]]:
        """The versions and the history, read together in one look at the registry."""
        with self._locked() as state:
            self._ensure_bundled(state)
            return [ModelVersion(**v) for v in state["versions"].values()], list(state["history"])

    def serve(self, version: str, user: str, reason: str = "",
              refuse_if: Callable[[], None] | None = None) -> ModelVersion:
        """Serve ``version`` from now on: its file replaces the served checkpoint atomically.
        :class:`UnknownIdError` for a version that is not registered (or whose file is gone).
        ``refuse_if`` is called under the registry's lock and refuses by raising (a trainer
        that starts takes its lock under the same folder lock, so the check cannot go stale)."""
        with self._locked() as state:
            if refuse_if is not None:
                refuse_if()
            self._ensure_bundled(state)
            if version not in state["versions"]:
                raise UnknownIdError(f"unknown model version '{version}'; registered: {sorted(state['versions'])}")
            entry = ModelVersion(**state["versions"][version])
            source = self._file(entry)
            if not source.is_file() or _sha256(source) != entry.sha256:
                raise UnknownIdError(f"the file of model version '{version}' is missing or changed ({source})")
            self.served_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.served_path, suffix=".pt") as tmp:
                shutil.copyfile(source, tmp)
            state["history"].append({"time": _now(), "version": version, "by": user, "reason": reason})
        return entry

    def _file(self, entry: ModelVersion) -> Path:
        return self.bundled_path if entry.status == BUNDLED else self.model_dir / entry.file

    def _version_of(self, path: Path) -> str | None:
        try:
            return read_checkpoint_record(path)[0]
        except (OSError, ValueError, KeyError, RuntimeError):
            return None

    def _copy_in(self, source: Path, relative: str) -> None:
        target = self.model_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".pt") as tmp:
            shutil.copyfile(source, tmp)

    def _ensure_bundled(self, state: dict[str, Any]) -> None:
        if state["versions"] or not self.bundled_path.is_file():
            return
        version = read_checkpoint_record(self.bundled_path)[0]
        entry = ModelVersion(version=version, status=BUNDLED, created=_now(), sha256=_sha256(self.bundled_path),
                             file=str(self.bundled_path), reason="shipped with the app")
        state["versions"][version] = asdict(entry)
        state["history"].append({"time": entry.created, "version": version, "by": "app", "reason": "bundled"})

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The registry's state under an exclusive lock of the model folder, written back if changed."""
        with locked_folder(self.model_dir):
            state = read_json(self.path)
            state = {"versions": dict(state.get("versions", {})), "history": list(state.get("history", []))}
            before = repr(state)
            yield state
            if repr(state) != before:
                write_json(self.path, state)
