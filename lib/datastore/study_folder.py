"""A MONAI Label datastore over a local folder in which one image id is one four-sequence study.

Layout of the studies folder::

    <studies>/<id>/<id>-t1n.nii.gz ... <id>-t2f.nii.gz   a case folder in BraTS naming, or
    <studies>/<id>.nii.gz                                 a single 4-channel NIfTI (t1n, t1c, t2w, t2f)
    <studies>/<id>/<id>-study.json                        optional: patient_id, patient_name, accession_number,
                                                          study_date (YYYYMMDD), description
    <studies>/labels/<tag>/<id>/v0001.nii.gz + v0001.json one file per saved version, never replaced
    <studies>/labels/.removed/...                         labels an admin removed (moved, not deleted)
    <studies>/.braintumorlabel/images/<id>.json           per-image info (strategy time stamps, ...)

Labels live on the study's reference grid (t1c). A saved label is validated first (readable,
3D, on the reference grid, values in {0, 1, 2, 3}); a bad one raises and stores nothing. A
``<id>-seg`` file in a case folder is ground truth, not an annotation: it is imported as
the ``final`` label only when ``import_case_labels`` is set (a BraTS training set, say).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from lib.atomic import atomic_path, read_json, write_json
from lib.brats import REFERENCE_SEQUENCE, SEQUENCES
from lib.errors import ConflictError, InputError, MissingSequenceError, UnknownIdError
from lib.transforms import Grid, read_image
from lib.transforms.io import (
    IMAGE_EXTENSIONS,
    LABEL_SUFFIX,
    check_sequence,
    find_case_files,
    read_label,
    split_channels,
    write_image_atomic,
)

from .base import FINAL, STUDY_REF_KEYS, StudyDatastore
from .labels import TAG_PATTERN, LabelFolder, LabelVersion, unused_path, validate_image_id, validate_tag

logger = logging.getLogger(__name__)

LABELS_DIR = "labels"
META_DIR = ".braintumorlabel"
#: how old the folder listing may be before ``list_images`` rescans it (seconds)
RESCAN_S = 5.0
_IMPORTED = "imported"
#: Image info the store derives from the files; recorded info never replaces it.
_DERIVED_INFO = frozenset({"name", "path", "layout", "problem", "sequences"})
#: The version number of a case folder's own ``-seg`` file when case labels are imported.
_IMPORTED_VERSION = 0


def _strip_image_extension(name: str) -> str | None:
    low = name.lower()
    return next((name[: -len(ext)] for ext in IMAGE_EXTENSIONS if low.endswith(ext)), None)


class StudyFolderDatastore(StudyDatastore):
    """Study-level local datastore (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, *, import_case_labels: bool = False, read_only: bool = False,
                 name: str = "BrainTumorLabel studies", description: str = "Four-sequence MRI studies") -> None:
        super().__init__(name, description)
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise UnknownIdError(f"studies folder '{self.root}' does not exist")
        self.import_case_labels = import_case_labels
        self.read_only = read_only
        self.labels = LabelFolder(self.root / LABELS_DIR)
        if not read_only:
            self.labels.clean_interrupted()
        self._lock = threading.RLock()
        self._studies: dict[str, Path] = {}
        self._scanned = 0.0
        self.refresh()

    # ---- studies
    def refresh(self) -> None:
        """Rescan the folder for case folders and 4-channel files."""
        studies: dict[str, Path] = {}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or entry.name == LABELS_DIR:
                continue
            if entry.is_dir() and any(_strip_image_extension(f.name) for f in entry.iterdir() if f.is_file()):
                studies[entry.name] = entry
            elif entry.is_file() and (stem := _strip_image_extension(entry.name)):
                studies[stem] = entry
        with self._lock:
            self._studies = studies
            self._scanned = time.monotonic()

    def list_images(self) -> list[str]:
        """Study ids; studies copied into the folder while the server runs appear within
        ``RESCAN_S`` seconds."""
        if time.monotonic() - self._scanned > RESCAN_S:
            self.refresh()
        return sorted(self._studies)

    def _known(self, image_id: str) -> Path:
        """The case folder or 4-channel file of a study, complete or not."""
        try:
            return self._studies[image_id]
        except KeyError:
            self.refresh()
            if image_id in self._studies:
                return self._studies[image_id]
            raise UnknownIdError(f"unknown image id '{image_id}'") from None

    def study_path(self, image_id: str) -> Path:
        """The case folder or 4-channel file of a study: what the preprocessing reads."""
        path = self._known(image_id)
        problem = self.study_problem(image_id)
        if problem:
            raise MissingSequenceError(problem, image_id)
        return path

    def get_image_uri(self, image_id: str) -> str:
        """The reference (t1c) file of a case folder, or the 4-channel file: what a viewer
        downloads, and the grid labels are stored on."""
        path = self._known(image_id)
        if path.is_file():
            return str(path)
        reference = [f for f in path.iterdir()
                     if (_strip_image_extension(f.name) or "").endswith("-" + REFERENCE_SEQUENCE)]
        if len(reference) != 1:
            raise MissingSequenceError(f"{len(reference)} {REFERENCE_SEQUENCE} files (expected one)", image_id, path)
        return str(reference[0])

    def sequence_uri(self, image_id: str, sequence: str) -> str:
        """A case folder's own file; for a 4-channel file, the channel written once to
        ``.braintumorlabel/sequences/<id>/`` (rewritten when the file changes)."""
        path = self.study_path(image_id)
        if path.is_dir():
            return super().sequence_uri(image_id, sequence)
        if sequence not in SEQUENCES:
            return super().sequence_uri(image_id, sequence)  # raises, naming the sequences
        target = self.root / META_DIR / "sequences" / image_id / f"{image_id}-{sequence}.nii.gz"
        if not target.exists() or target.stat().st_mtime_ns < path.stat().st_mtime_ns:
            channels = split_channels(read_image(path, image_id), image_id, path)
            for name, channel in channels.items():
                write_image_atomic(channel, target.with_name(f"{image_id}-{name}.nii.gz"))
        return str(target)

    def input_fingerprint(self, image_id: str) -> str:
        """SHA-256 of the four sequence files' bytes (or of the 4-channel file), in sequence order."""
        files = find_case_files(self.study_path(image_id), image_id)
        digest = hashlib.sha256()
        for path in ([files.sequences[s] for s in SEQUENCES] if files.sequences else [files.multichannel]):
            assert path is not None
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    def study_problem(self, image_id: str) -> str | None:
        """Why a study cannot be segmented (a missing or ambiguous sequence), or None."""
        try:
            find_case_files(self._known(image_id), image_id)
        except InputError as exc:
            return exc.problem
        return None

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        """The study's name, layout, and its files relative to the studies folder (never a path
        of the server), or why it cannot be segmented."""
        path = self._known(image_id)
        info: dict[str, Any] = {"name": image_id, "path": self._relative(path),
                                "layout": "4-channel file" if path.is_file() else "case folder"}
        problem = self.study_problem(image_id)
        if problem:
            info["problem"] = problem
        else:
            files = find_case_files(path, image_id)
            info["sequences"] = ({s: self._relative(p) for s, p in files.sequences.items()} if files.sequences
                                 else {s: f"{self._relative(path)}#{i}" for i, s in enumerate(SEQUENCES)})
        recorded = read_json(self._image_info_path(image_id))  # what was said at upload: never over the above
        return {**self._study_sidecar(image_id, path), **{k: v for k, v in recorded.items() if k not in _DERIVED_INFO},
                **info}

    @staticmethod
    def _study_sidecar(image_id: str, path: Path) -> dict[str, Any]:
        """The :data:`STUDY_REF_KEYS` of a case folder's ``<id>-study.json`` (none when absent or unreadable)."""
        sidecar = path / f"{image_id}-study.json" if path.is_dir() else None
        record = read_json(sidecar) if sidecar is not None and sidecar.is_file() else {}
        if not isinstance(record, dict):
            return {}
        return {k: str(record[k]) for k in STUDY_REF_KEYS if isinstance(record.get(k), str | int)}

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._known(image_id)
        with self._lock:
            path = self._image_info_path(image_id)
            merged = {**read_json(path), **info}
            write_json(path, merged)

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Add an uploaded 4-channel image as a new study. Validated first: the declared size
        (before reading voxels), then four usable 3D channels (:func:`check_sequence`: not tiny,
        not blank, finite, sane spacing); an existing id raises :class:`ConflictError`;
        nothing is overwritten."""
        self._check_writable()
        image_id = validate_image_id(image_id)
        src = Path(image_filename)
        for sequence, channel in split_channels(read_image(src, image_id), image_id, src.name).items():
            check_sequence(channel, image_id, src.name, sequence)
        ext = next((e for e in IMAGE_EXTENSIONS if src.name.lower().endswith(e)), ".nii.gz")
        dest = self.root / f"{image_id}{ext}"
        with self._lock:
            self.refresh()
            if image_id in self._studies:
                raise ConflictError(f"image id '{image_id}' already exists; choose another id")
            with atomic_path(dest, suffix=ext) as tmp:
                shutil.copyfile(src, tmp)
            self._studies[image_id] = dest
            if image_info:
                write_json(self._image_info_path(image_id), {"uploaded": int(time.time()), **image_info})
        return image_id

    def remove_image(self, image_id: str) -> None:
        """Move a study and its labels under ``.braintumorlabel/removed`` (recoverable)."""
        self._check_writable()
        with self._lock:
            path = self._known(image_id)
            trash = unused_path(self.root / META_DIR / "removed" / image_id)
            trash.mkdir(parents=True)
            shutil.move(str(path), trash / path.name)
            for tag_dir in self.labels.root.iterdir() if self.labels.root.is_dir() else []:
                folder = tag_dir / image_id
                if TAG_PATTERN.fullmatch(tag_dir.name) and folder.is_dir():
                    shutil.move(str(folder), trash / f"labels-{tag_dir.name}")
            del self._studies[image_id]

    # ---- labels
    def save_label_version(self, image_id: str, label_filename: str, tag: str,
                           info: dict[str, Any]) -> LabelVersion:
        self._check_writable()
        tag = validate_tag(tag)
        label = self._validated_label(image_id, Path(label_filename))
        saved = self.labels.save(image_id, tag, label, info)
        logger.info("saved label '%s' version %d for '%s'", tag, saved.version, image_id)
        return saved

    def _validated_label(self, image_id: str, path: Path) -> sitk.Image:
        study = self._known(image_id)
        return read_label(path, Grid.of(self._reference_image(image_id, study)), image_id)

    def _reference_image(self, image_id: str, study: Path) -> sitk.Image:
        if study.is_file():
            return split_channels(read_image(study, image_id), image_id, study)[REFERENCE_SEQUENCE]
        files = find_case_files(study, image_id)
        assert files.sequences is not None
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(files.sequences[REFERENCE_SEQUENCE]))
        reader.ReadImageInformation()
        return _grid_image(reader)

    def label_versions(self, image_id: str, tag: str) -> list[LabelVersion]:
        self._known(image_id)
        versions = [self.labels.version_info(image_id, tag, v) for v in self.labels.versions(image_id, tag)]
        if not versions and tag == FINAL and self._case_label(image_id) is not None:
            versions.append(LabelVersion(_IMPORTED_VERSION, {"source": _IMPORTED}))
        return versions

    def label_version_uri(self, image_id: str, tag: str, version: int) -> str:
        self._known(image_id)
        if version == _IMPORTED_VERSION and tag == FINAL and (case_label := self._case_label(image_id)):
            return str(case_label)
        if version not in self.labels.versions(image_id, tag):
            raise UnknownIdError(f"image '{image_id}' has no version {version} of its '{tag}' label")
        return str(self.labels.path(image_id, tag, version))

    def _case_label(self, image_id: str) -> Path | None:
        """The ``<id>-seg`` file of a case folder, when case labels are imported."""
        study = self._studies.get(image_id)
        if not self.import_case_labels or study is None or not study.is_dir():
            return None
        return next((f for f in sorted(study.iterdir())
                     if (_strip_image_extension(f.name) or "").endswith("-" + LABEL_SUFFIX)), None)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Move every version of a label under ``labels/.removed`` (recoverable)."""
        self._check_writable()
        self._known(label_id)
        self.labels.move_aside(label_id, label_tag, self.root / LABELS_DIR / ".removed")

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        """A zip of the studies that have a ``final`` label, each with its latest label."""
        pairs = self.datalist()[: limit_cases or None]
        archive = self.root / META_DIR / "dataset.zip"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(archive, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w") as zf:
            for pair in pairs:
                study = Path(pair["image"])
                sources = [study] if study.is_file() else sorted(f for f in study.iterdir() if f.is_file())
                for f in sources:
                    zf.write(f, f"images/{pair['case_id']}/{f.name}")
                zf.write(pair["label"], f"labels/final/{pair['case_id']}.nii.gz")
        return str(archive)

    def label_tags(self, image_id: str) -> list[str]:
        tags = set(self.labels.tags(image_id))
        if self._case_label(image_id) is not None:
            tags.add(FINAL)
        return sorted(tags)

    # ---- helpers
    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.name

    def _image_info_path(self, image_id: str) -> Path:
        return self.root / META_DIR / "images" / f"{validate_image_id(image_id)}.json"

    def _check_writable(self) -> None:
        if self.read_only:
            raise ConflictError("the datastore is read-only")


def _grid_image(reader: sitk.ImageFileReader) -> sitk.Image:
    """An empty 3D image with the grid of a file whose header ``reader`` has read."""
    image = sitk.Image([int(s) for s in reader.GetSize()[:3]], sitk.sitkUInt8)
    image.SetSpacing(reader.GetSpacing()[:3])
    image.SetOrigin(reader.GetOrigin()[:3])
    direction = reader.GetDirection()
    if len(direction) == 9:
        image.SetDirection(direction)
    return image
