"""Report versions on disk, one folder per study:

    <root>/<study>/v0001.json          the report (lib.report.document.Report)
    <root>/<study>/v0001-images.png    its key images
    <root>/<study>/v0001.pdf           its PDF

A version is never replaced; each change (a review, a signature, new clinical inputs) is the
next one. Numbers are reserved by creating the JSON exclusively, as label versions are.
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


class ReportStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, study: str) -> Path:
        return self.root / validate_image_id(study)

    def versions(self, study: str) -> list[int]:
        folder = self.folder(study)
        return sorted(int(m[1]) for f in folder.iterdir() if (m := _VERSION.match(f.name))) if folder.is_dir() else []

    def latest(self, study: str) -> Report:
        versions = self.versions(study)
        if not versions:
            raise UnknownIdError(f"study '{study}' has no report; draft one first")
        return self.get(study, versions[-1])

    def get(self, study: str, version: int) -> Report:
        path = self.folder(study) / f"v{version:04d}.json"
        if not path.exists():
            raise UnknownIdError(f"study '{study}' has no report version {version}")
        return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def path(self, study: str, version: int, kind: str) -> Path:
        """The file of a version: kind "json", "images" (PNG) or "pdf"."""
        name = {"json": f"v{version:04d}.json", "images": f"v{version:04d}-images.png", "pdf": f"v{version:04d}.pdf"}
        return self.folder(study) / name[kind]

    def reserve(self, study: str) -> int:
        folder = self.folder(study)
        folder.mkdir(parents=True, exist_ok=True)
        version = max(self.versions(study), default=0) + 1
        while True:
            try:
                os.close(os.open(folder / f"v{version:04d}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                return version
            except FileExistsError:
                version += 1

    def save(self, report: Report, version: int) -> Report:
        """Write ``report`` as the reserved ``version``."""
        saved = Report.from_dict({**report.to_dict(), "version": version})
        write_json(self.path(report.study, version, "json"), saved.to_dict())
        return saved
