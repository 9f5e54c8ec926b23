"""Versioned label files on disk, shared by the study datastores.

Layout under ``root``::

    <root>/<tag>/<image id>/v0001.nii.gz   the label (UInt8, on the study's t1c grid)
    <root>/<tag>/<image id>/v0001.json     what was recorded with it (time, user, model version, ...)

A version is never replaced. Its number is reserved by creating ``vNNNN.json`` exclusively
(``O_CREAT | O_EXCL``), so two threads or two processes saving the same label at once get
different numbers; the version counts once its ``.nii.gz`` exists (written atomically), so a
reader never sees half a label. A reservation whose label never arrived (a writer that was
killed) leaves a gap in the numbers, nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from lib.atomic import read_json, write_json
from lib.errors import InputError, UnknownIdError
from lib.transforms.io import write_image_atomic

_VERSION_FILE = re.compile(r"^v(\d{4,})\.nii\.gz$")
_RESERVATION = re.compile(r"^v(\d{4,})\.json$")
#: A label tag: letters, digits and '_' (it appears in file names and DICOM series descriptions).
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: How old a temporary file or an empty reservation must be to count as left by a killed writer.
INTERRUPTED_AFTER_S = 600.0
#: An image id: a folder or file name, or a DICOM UID; never a path.
IMAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_tag(tag: str) -> str:
    """``tag`` as a plain string if it is a valid label tag (an enum such as MONAI Label's
    ``DefaultLabelTag.ORIGINAL`` gives its value), else :class:`InputError` naming it."""
    if isinstance(tag, Enum):
        tag = str(tag.value)
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise InputError(f"{shown(tag)} is not a valid label tag (1 to 64 letters, digits or '_')")
    return tag


def validate_image_id(image_id: str) -> str:
    """``image_id`` if it can name a study, else :class:`InputError` naming it (no slashes,
    no leading dot, at most 128 characters)."""
    if not isinstance(image_id, str) or not IMAGE_ID_PATTERN.fullmatch(image_id) or ".." in image_id:
        raise InputError(f"{shown(image_id)} is not a valid image id (up to 128 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit)")
    return image_id


def shown(value: object) -> str:
    """``repr(value)`` cut to 80 characters, for an error message that names a client's value."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


@dataclass(frozen=True)
class LabelVersion:
    """One stored version of a label: its number and what was recorded with it."""

    version: int
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.info, "version": self.version}


class LabelFolder:
    """The versioned labels of every study and tag under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, image_id: str, tag: str) -> Path:
        # every path goes through here: ids and tags from requests never leave the root
        return self.root / validate_tag(tag) / validate_image_id(image_id)

    def path(self, image_id: str, tag: str, version: int) -> Path:
        return self.folder(image_id, tag) / f"v{version:04d}.nii.gz"

    def _info_path(self, image_id: str, tag: str, version: int) -> Path:
        return self.folder(image_id, tag) / f"v{version:04d}.json"

    def versions(self, image_id: str, tag: str) -> list[int]:
        """Complete versions, oldest first."""
        folder = self.folder(image_id, tag)
        if not folder.is_dir():
            return []
        return sorted(int(m[1]) for f in folder.iterdir() if (m := _VERSION_FILE.match(f.name)))

    def version_info(self, image_id: str, tag: str, version: int) -> LabelVersion:
        return LabelVersion(version, read_json(self._info_path(image_id, tag, version)))

    def tags(self, image_id: str) -> list[str]:
        """Tags under which ``image_id`` has at least one complete version."""
        if not self.root.is_dir():
            return []
        return sorted(t.name for t in self.root.iterdir()
                      if TAG_PATTERN.fullmatch(t.name) and self.versions(image_id, t.name))

    def reserve(self, image_id: str, tag: str, at_least: int = 1) -> int:
        """Reserve the next free version number (>= ``at_least``) by creating its JSON
        sidecar exclusively. Safe across threads and processes."""
        folder = self.folder(image_id, tag)
        folder.mkdir(parents=True, exist_ok=True)
        taken = [int(m[1]) for f in folder.iterdir()
                 if (m := _VERSION_FILE.match(f.name) or _RESERVATION.match(f.name))]
        version = max([at_least - 1, *taken]) + 1
        while True:
            try:
                fd = os.open(folder / f"v{version:04d}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                version += 1
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"reserved": int(time.time())}, fh)
            return version

    def write(self, image_id: str, tag: str, version: int, label: sitk.Image, info: dict[str, Any]) -> LabelVersion:
        """Store a reserved version: the sidecar first, then the label (atomically), which
        makes the version visible."""
        target = self.path(image_id, tag, version)
        record = {"ts": int(time.time()), **info, "version": version, "tag": tag}
        write_json(self._info_path(image_id, tag, version), record)
        write_image_atomic(label, target)
        return LabelVersion(version, record)

    def release(self, image_id: str, tag: str, version: int) -> None:
        """Give back a reserved version whose label was never written (a failed save)."""
        if not self.path(image_id, tag, version).exists():
            self._info_path(image_id, tag, version).unlink(missing_ok=True)

    def save(self, image_id: str, tag: str, label: sitk.Image, info: dict[str, Any]) -> LabelVersion:
        """Reserve the next version and store ``label`` under it."""
        version = self.reserve(image_id, tag)
        try:
            return self.write(image_id, tag, version, label, info)
        except BaseException:
            self.release(image_id, tag, version)
            raise

    def update_info(self, image_id: str, tag: str, version: int, info: dict[str, Any]) -> None:
        meta = self._info_path(image_id, tag, version)
        write_json(meta, {**read_json(meta), **info})

    def move_aside(self, image_id: str, tag: str, trash: Path) -> Path:
        """Move every version of a label into ``trash/<tag>/<image id>-<time>`` (recoverable)."""
        folder = self.folder(image_id, tag)
        if not self.versions(image_id, tag):
            raise UnknownIdError(f"image '{image_id}' has no label with tag '{tag}'")
        target = unused_path(trash / tag / image_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), target)
        return target


    def clean_interrupted(self, older_than_s: float = INTERRUPTED_AFTER_S) -> int:
        """Remove what writers that were killed left behind: temporary files, and reservations
        whose label never arrived, older than ``older_than_s``. Returns how many were removed.
        Run at start-up; a version that was acknowledged always has its label."""
        if not self.root.is_dir():
            return 0
        removed, now = 0, time.time()
        for path in self.root.glob("*/*/*"):
            stale = now - path.stat().st_mtime > older_than_s
            temporary = path.name.startswith(".") and ".tmp" in path.name
            orphan = (m := _RESERVATION.match(path.name)) is not None and \
                not path.with_name(f"v{m[1]}.nii.gz").exists()
            if stale and (temporary or orphan):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def unused_path(stem: Path) -> Path:
    """``<stem>-<time>`` or, when that exists (two removals in one second), ``<stem>-<time>-2``..."""
    base = f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}"
    candidates = (Path(base if n == 1 else f"{base}-{n}") for n in range(1, 10_000))
    return next(p for p in candidates if not p.exists())
