"""Report versions on disk, one folder per study:

    <root>/<study>/v0001.json          the report (lib.report.document.Report)
    <root>/<study>/v0001-images.png    its key images
    <root>/<study>/v0001.pdf           its PDF

A version is never replaced; each change (a review, a signature, new clinical inputs) is the
next one. A number is reserved by creating ``vNNNN.reserved`` exclusively (two writers never
get the same one); the version exists once its JSON is there, written atomically, so a reader
never sees a half-written or empty report, and a failed draft gives its number back
(:meth:`ReportStore.release`). Every file is readable by the server's user only: a PACS
study's report names the patient.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lib.atomic import write_json
from lib.datastore.labels import validate_image_id
from lib.errors import UnknownIdError

from .document import Report

_VERSION = re.compile(r"^v(\d{4,})\.json$")
_TAKEN = re.compile(r"^v(\d{4,})\.(json|reserved)$")
#: The kinds of file of a version, and their names.
_NAMES = {"json": "v{:04d}.json", "images": "v{:04d}-images.png", "pdf": "v{:04d}.pdf", "reserved": "v{:04d}.reserved"}


class ReportStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, study: str) -> Path:
        return self.root / validate_image_id(study)

    def versions(self, study: str) -> list[int]:
        """The complete versions of a study's report, oldest first (an empty JSON is a reservation
        left by an older release, not a version)."""
        folder = self.folder(study)
        if not folder.is_dir():
            return []
        return sorted(int(m[1]) for f in folder.iterdir() if (m := _VERSION.match(f.name)) and f.stat().st_size)

    def latest(self, study: str) -> Report:
        versions = self.versions(study)
        if not versions:
            raise UnknownIdError(f"study '{study}' has no report; draft one first")
        return self.get(study, versions[-1])

    def get(self, study: str, version: int) -> Report:
        path = self.path(study, version, "json")
        if not path.exists():
            raise UnknownIdError(f"study '{study}' has no report version {version}")
        return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def path(self, study: str, version: int, kind: str) -> Path:
        """The file of a version: kind "json", "images" (PNG) or "pdf"."""
        return self.folder(study) / _NAMES[kind].format(version)

    def reserve(self, study: str) -> int:
        """The next version number, held by its reservation until :meth:`save` or :meth:`release`."""
        folder = self.folder(study)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        version = max((int(m[1]) for f in folder.iterdir() if (m := _TAKEN.match(f.name))), default=0) + 1
        while True:
            try:
                os.close(os.open(self.path(study, version, "reserved"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                return version
            except FileExistsError:
                version += 1

    def save(self, report: Report, version: int) -> Report:
        """Write ``report`` as the reserved ``version`` (atomically: it exists once complete)."""
        saved = Report.from_dict({**report.to_dict(), "version": version})
        write_json(self.path(report.study, version, "json"), saved.to_dict())
        self.path(report.study, version, "reserved").unlink(missing_ok=True)
        return saved

    def release(self, study: str, version: int) -> None:
        """Give back a reserved version that was never saved, with any file written for it."""
        if self.path(study, version, "json").exists():
            return
        for kind in ("images", "pdf", "reserved"):
            self.path(study, version, kind).unlink(missing_ok=True)
