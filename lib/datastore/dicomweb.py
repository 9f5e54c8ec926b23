"""A MONAI Label datastore over a DICOMweb PACS (Orthanc) in which one image id is one MR study.

- Studies are listed with QIDO-RS (modality MR). The four sequences of a study are found by
  :mod:`lib.dicom.sequences`; a study where one is missing or ambiguous is listed with the
  reason (``get_image_info``) and refused with :class:`MissingSequenceError` on infer.
- The series are fetched with WADO-RS and turned into volumes (:mod:`lib.dicom.volume`),
  written as a case folder in BraTS naming under ``cache_dir/<study uid>/``, so the
  preprocessing reads them like any local case. The cache is keyed by the study's MR
  series and their instance counts: when the PACS content changes, it is rebuilt.
- A saved label becomes a DICOM SEG (:mod:`lib.dicom.seg`) sent with STOW-RS as a new
  series ("BrainTumorLabel <tag> v<n>"); earlier versions stay in the PACS. The SEG is
  first written to ``cache_dir/outbox/``: when the PACS is down the save still succeeds,
  the label counts at once, and the outbox is sent when the PACS answers again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import SimpleITK as sitk
from monailabel.interfaces.datastore import DefaultLabelTag
from pydicom.errors import InvalidDicomError

from lib.atomic import atomic_path, read_json, write_json
from lib.brats import REFERENCE_SEQUENCE, SEQUENCES, sequence_filename
from lib.datastore.base import StudyDatastore
from lib.dicom.seg import label_to_seg, seg_to_label
from lib.dicom.sequences import SeriesInfo, identify_sequences
from lib.dicom.volume import series_to_image
from lib.errors import ConflictError, InputError, InvalidLabelError, MissingSequenceError, PacsRefusedError, \
    PacsUnavailableError, UnknownIdError
from lib.pacs.client import PacsClient
from lib.transforms import Grid, read_image
from lib.transforms.io import check_label

logger = logging.getLogger(__name__)

LABEL_SERIES = "BrainTumorLabel"
_LABEL_DESCRIPTION = re.compile(rf"^{LABEL_SERIES} (?P<tag>[A-Za-z0-9_]+) v(?P<version>\d+)$")
#: Instance attributes the sequence classifier reads (QIDO-RS includefield).
CLASSIFIER_FIELDS = ("0008103E", "00181030", "00080008", "00180020", "00180080", "00180081", "00180082",
                     "00180010", "00189087", "00200011")
#: How long a study listing is reused before QIDO-RS is asked again (seconds).
LISTING_TTL_S = 5.0


@dataclass
class StudyRecord:
    """What the datastore knows of a study; cached as ``cache_dir/<uid>/study.json``."""

    uid: str
    signature: list[list[Any]]
    sequences: dict[str, str]
    descriptions: dict[str, str]
    problem: str | None
    labels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tag -> versions (PACS)


class DicomWebStudyDatastore(StudyDatastore):
    """Study-level datastore over DICOMweb (see the module docstring)."""

    def __init__(self, client: PacsClient, cache_dir: str | Path, *, algorithm: str = "brats_segresnet",
                 study_filter: dict[str, str] | None = None) -> None:
        """``study_filter``: QIDO-RS study query keys that narrow the MR studies served, e.g.
        ``{"StudyDate": "20260101-", "InstitutionName": "..."}`` (a PACS holds far more studies
        than one annotation project needs)."""
        super().__init__("PACS", f"DICOMweb studies at {client.config.url}")
        self.client = client
        self.study_filter = {"ModalitiesInStudy": "MR", **(study_filter or {})}
        self.cache = Path(cache_dir)
        self.outbox = self.cache / "outbox"
        self.refused_dir = self.outbox / "refused"
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.algorithm = algorithm
        self._lock = threading.RLock()
        self._listing: tuple[float, list[str]] | None = None

    # ---- studies
    def list_images(self, offline_ok: bool = False) -> list[str]:
        """Study UIDs of the MR studies in the PACS. With ``offline_ok``, a PACS that is
        unavailable gives the last listing (kept in the cache) instead of an error."""
        with self._lock:
            if self._listing and time.monotonic() - self._listing[0] < LISTING_TTL_S:
                return list(self._listing[1])
        self.flush_outbox()
        try:
            studies = self.client.studies(self.study_filter)
        except PacsUnavailableError:
            last = read_json(self.cache / "listing.json").get("studies")
            if offline_ok and last is not None:
                return list(last)
            raise
        uids = sorted(str(s["0020000D"]["Value"][0]) for s in studies if s.get("0020000D", {}).get("Value"))
        with self._lock:
            self._listing = (time.monotonic(), uids)
            write_json(self.cache / "listing.json", {"studies": uids})
        return uids

    def refresh(self) -> None:
        with self._lock:
            self._listing = None

    def _record_path(self, uid: str) -> Path:
        return self.cache / uid / "study.json"

    def study_record(self, uid: str, offline_ok: bool = False) -> StudyRecord:
        """The study's sequences and labels, re-read from the PACS when its series changed.
        With ``offline_ok``, a PACS that is unavailable gives the cached record, if any."""
        try:
            series = self.client.series(uid, fields=("0008103E", "00201209", "00080060"))
        except PacsUnavailableError:
            cached = self._read_record(uid) if offline_ok else None
            if cached is None:
                raise
            logger.warning("PACS unavailable; using the cached record of study %s", uid)
            return cached
        if not series:
            raise UnknownIdError(f"unknown image id '{uid}' (no such study in the PACS)")
        mr, segs = [], []
        for s in series:
            modality = (s.get("00080060", {}).get("Value") or [""])[0]
            series_uid = s["0020000E"]["Value"][0]
            count = int((s.get("00201209", {}).get("Value") or [0])[0])
            (segs if modality == "SEG" else mr).append((series_uid, count, s))
        signature = sorted([u, c] for u, c, _ in mr)
        cached = self._read_record(uid)
        labels = self._labels_from_series(segs)
        if cached is not None and cached.signature == signature:
            cached.labels = labels
            return cached
        infos = []
        for series_uid, count, _ in mr:
            attributes = self.client.first_instance(uid, series_uid, CLASSIFIER_FIELDS)
            infos.append(SeriesInfo.from_dicom_json(series_uid, attributes, instances=count))
        found = identify_sequences(infos)
        record = StudyRecord(uid, signature, found.series,
                             {i.uid: i.description for i in infos}, found.problem, labels)
        self._invalidate_volumes(uid)
        write_json(self._record_path(uid), asdict(record))
        return record

    @staticmethod
    def _labels_from_series(segs: list[tuple[str, int, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        labels: dict[str, list[dict[str, Any]]] = {}
        for series_uid, _, s in segs:
            description = (s.get("0008103E", {}).get("Value") or [""])[0]
            match = _LABEL_DESCRIPTION.match(str(description))
            if match:
                labels.setdefault(match["tag"], []).append({"series": series_uid, "version": int(match["version"])})
        return {tag: sorted(v, key=lambda x: x["version"]) for tag, v in labels.items()}

    def _read_record(self, uid: str) -> StudyRecord | None:
        try:
            return StudyRecord(**json.loads(self._record_path(uid).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError):
            return None

    def _invalidate_volumes(self, uid: str) -> None:
        folder = self.cache / uid
        for f in folder.glob(f"{uid}-*.nii.gz") if folder.exists() else []:
            f.unlink()
        for f in (folder / "t1c-headers").glob("*.dcm") if (folder / "t1c-headers").exists() else []:
            f.unlink()

    def study_path(self, image_id: str) -> Path:
        """The case folder (BraTS naming) of the study's four volumes, fetched when needed.
        Raises :class:`MissingSequenceError` naming the problem for an incomplete study."""
        record = self.study_record(image_id, offline_ok=True)
        if record.problem:
            raise MissingSequenceError(record.problem, image_id)
        folder = self.cache / image_id
        with self._lock:
            for seq in SEQUENCES:
                target = folder / sequence_filename(image_id, seq)
                if target.exists():
                    continue
                datasets = self.client.retrieve_series(image_id, record.sequences[seq])
                image = series_to_image(datasets, f"{seq} series {record.sequences[seq]}")
                if seq == REFERENCE_SEQUENCE:  # before the volume: the volume marks a complete fetch
                    self._keep_headers(folder / "t1c-headers", datasets)
                with atomic_path(target, suffix=".nii.gz") as tmp:
                    sitk.WriteImage(image, str(tmp), useCompression=True)
        return folder

    @staticmethod
    def _keep_headers(folder: Path, datasets: list[pydicom.Dataset]) -> None:
        """The t1c instances without pixel data: what a SEG needs to reference its source."""
        folder.mkdir(parents=True, exist_ok=True)
        for i, ds in enumerate(datasets):
            header = pydicom.Dataset(ds)
            header.file_meta = ds.file_meta
            if "PixelData" in header:
                del header.PixelData
            with atomic_path(folder / f"{i:05d}.dcm", suffix=".dcm") as tmp:
                header.save_as(str(tmp), write_like_original=False)

    def _t1c_headers(self, image_id: str) -> list[pydicom.Dataset]:
        folder = self.study_path(image_id) / "t1c-headers"
        return [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]

    def get_image_uri(self, image_id: str) -> str:
        return str(self.study_path(image_id) / sequence_filename(image_id, REFERENCE_SEQUENCE))

    def get_image(self, image_id: str, params: dict[str, Any] | None = None) -> Any:
        return open(self.get_image_uri(image_id), "rb")  # noqa: SIM115 - the caller streams and closes it

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        record = self.study_record(image_id)
        info: dict[str, Any] = {"name": image_id, "study_uid": image_id,
                                "sequences": {s: {"series": u, "description": record.descriptions.get(u, "")}
                                              for s, u in record.sequences.items()}}
        if record.problem:
            info["problem"] = record.problem
        return {**read_json(self.cache / image_id / "info.json"), **info}

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        path = self.cache / image_id / "info.json"
        write_json(path, {**read_json(path), **info})

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        raise ConflictError("studies come from the PACS; send new studies to the PACS, not to this server")

    def remove_image(self, image_id: str) -> None:
        raise ConflictError("studies are not removed from the PACS by this server")

    # ---- labels
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Validate the label against the study's t1c grid, keep it locally, write a SEG into
        the outbox and send it. A PACS that is down does not lose the label: it stays in
        the outbox and is sent later (``label_info`` of the version says ``pending``)."""
        tag = label_tag or DefaultLabelTag.FINAL.value
        if not re.fullmatch(r"[A-Za-z0-9_]+", tag):
            raise InputError(f"'{tag}' is not a valid label tag")
        reference = read_image(self.get_image_uri(image_id), image_id)
        try:
            label = read_image(label_filename, image_id)
        except InputError as exc:
            raise InvalidLabelError(f"label cannot be read: {exc.problem}", image_id) from None
        label = check_label(label, Grid.of(reference), image_id, "submitted label")
        with self._lock:
            version = self._next_version(image_id, tag)
            # the SEG is built first: a label it cannot be made from leaves nothing behind
            manual = tag != DefaultLabelTag.ORIGINAL.value
            seg = label_to_seg(sitk.GetArrayFromImage(label), self._t1c_headers(image_id), manual=manual,
                               algorithm=self.algorithm,
                               algorithm_version=str(label_info.get("model_version", "unknown")),
                               series_number=900 + version)
            seg.SeriesDescription = f"{LABEL_SERIES} {tag} v{version}"
            local = self.cache / image_id / "labels" / tag / f"v{version:04d}.nii.gz"
            meta = {**label_info, "version": version, "tag": tag, "ts": int(time.time()),
                    "seg_series": str(seg.SeriesInstanceUID), "pending": True}
            write_json(local.with_name(f"v{version:04d}.json"), meta)
            outgoing = self.outbox / f"{int(time.time() * 1000)}-{image_id}-{tag}-v{version:04d}.dcm"
            with atomic_path(outgoing, suffix=".dcm") as tmp:
                seg.save_as(str(tmp))
            with atomic_path(local, suffix=".nii.gz") as tmp:
                sitk.WriteImage(label, str(tmp), useCompression=True)
        self.flush_outbox()
        return image_id

    def flush_outbox(self) -> int:
        """Send the SEGs waiting in the outbox, oldest first, until the PACS is unavailable.
        A SEG the PACS refuses for good (or an unreadable outbox file) is moved to
        ``outbox/refused/`` and logged, so it cannot block the labels behind it; its label
        stays in the local cache. Returns how many were sent."""
        sent = 0
        with self._lock:
            for path in sorted(self.outbox.glob("*.dcm")):
                study, tag, version = self._outbox_key(path)
                meta_path = self.cache / study / "labels" / tag / f"v{version:04d}.json"
                try:
                    self.client.store([pydicom.dcmread(path)])
                except (PacsRefusedError, UnknownIdError, InvalidDicomError) as exc:
                    logger.error("label %s %s v%d refused, kept in %s: %s", study, tag, version,
                                 self.refused_dir, exc)
                    self.refused_dir.mkdir(exist_ok=True)
                    path.replace(self.refused_dir / path.name)
                    write_json(meta_path, {**read_json(meta_path), "pending": False, "refused": str(exc)})
                    continue
                except PacsUnavailableError as exc:
                    logger.warning("label kept in the outbox, PACS unavailable: %s", exc)
                    break
                write_json(meta_path, {**read_json(meta_path), "pending": False})
                path.unlink()
                sent += 1
        return sent

    @staticmethod
    def _outbox_key(path: Path) -> tuple[str, str, int]:
        stem = path.name[: -len(".dcm")]
        _, rest = stem.split("-", 1)
        study, tag, version = rest.rsplit("-", 2)
        return study, tag, int(version[1:])

    def _local_versions(self, image_id: str, tag: str) -> list[int]:
        folder = self.cache / image_id / "labels" / tag
        return sorted(int(f.name[1:5]) for f in folder.glob("v*.nii.gz")) if folder.exists() else []

    def _next_version(self, image_id: str, tag: str) -> int:
        pacs = [v["version"] for v in self.study_record(image_id, offline_ok=True).labels.get(tag, [])]
        return max([0, *pacs, *self._local_versions(image_id, tag)]) + 1

    def label_versions(self, image_id: str, tag: str) -> list[int]:
        """Versions known locally or in the PACS, oldest first."""
        pacs = {v["version"] for v in self.study_record(image_id, offline_ok=True).labels.get(tag, [])}
        return sorted(pacs | set(self._local_versions(image_id, tag)))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        versions = self.label_versions(label_id, label_tag)
        if not versions:
            raise UnknownIdError(f"study '{label_id}' has no label with tag '{label_tag}'")
        local = self.cache / label_id / "labels" / label_tag / f"v{versions[-1]:04d}.nii.gz"
        if not local.exists():
            self._fetch_label(label_id, label_tag, versions[-1], local)
        return str(local)

    def _fetch_label(self, image_id: str, tag: str, version: int, target: Path) -> None:
        entry = next(v for v in self.study_record(image_id).labels[tag] if v["version"] == version)
        seg = self.client.retrieve_series(image_id, entry["series"])[0]
        labels = seg_to_label(seg, self._t1c_headers(image_id))
        reference = sitk.ReadImage(self.get_image_uri(image_id))
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(reference)
        with atomic_path(target, suffix=".nii.gz") as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=True)

    def label_tags(self, image_id: str) -> list[str]:
        tags = set(self.study_record(image_id, offline_ok=True).labels)
        folder = self.cache / image_id / "labels"
        if folder.exists():
            tags |= {p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("v*.nii.gz"))}
        return sorted(tags)

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        versions = self.label_versions(label_id, label_tag)
        if not versions:
            raise UnknownIdError(f"study '{label_id}' has no label with tag '{label_tag}'")
        meta = read_json(self.cache / label_id / "labels" / label_tag / f"v{versions[-1]:04d}.json")
        return {**meta, "version": versions[-1], "versions": len(versions)}

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        version = self.get_label_info(label_id, label_tag)["version"]
        path = self.cache / label_id / "labels" / label_tag / f"v{version:04d}.json"
        write_json(path, {**read_json(path), **info})

    def remove_label(self, label_id: str, label_tag: str) -> None:
        raise ConflictError("label versions are kept in the PACS; save a new version instead")

    def datalist(self) -> list[dict[str, Any]]:
        pairs = []
        for uid in self.get_labeled_images(DefaultLabelTag.FINAL.value):
            try:
                pairs.append({"case_id": uid, "image": str(self.study_path(uid)),
                              "label": self.get_label_uri(uid, DefaultLabelTag.FINAL.value)})
            except MissingSequenceError:
                continue
        return pairs

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        raise ConflictError("export a dataset from the PACS itself")

    def status(self) -> dict[str, Any]:
        """Counts, from the cache when the PACS is unavailable (``pacs_available`` says which)."""
        tags: dict[str, int] = {}
        try:
            uids, available = self.list_images(), True
        except PacsUnavailableError:
            uids, available = self.list_images(offline_ok=True), False
        for uid in uids:
            for tag in self.label_tags(uid):
                tags[tag] = tags.get(tag, 0) + 1
        return {"total": len(uids), "completed": tags.get(DefaultLabelTag.FINAL.value, 0), "label_tags": tags,
                "outbox": len(list(self.outbox.glob("*.dcm"))),
                "outbox_refused": len(list(self.refused_dir.glob("*.dcm"))), "pacs_available": available}

    def json(self) -> dict[str, Any]:
        objects = {}
        for uid in self.list_images():
            objects[uid] = {"image": self.get_image_info(uid),
                            "labels": {tag: {"versions": len(self.label_versions(uid, tag))} for tag in self.label_tags(uid)}}
        return {"name": self._name, "description": self._description, "objects": objects}

