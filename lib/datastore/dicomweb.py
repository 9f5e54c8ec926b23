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
  the label counts at once, and the outbox is sent when the PACS answers again (after the
  next save, or by the sender thread the server starts, :meth:`start_outbox_sender`).

Cache layout::

    <cache>/<study uid>/<uid>-t1n.nii.gz ...  the study's volumes, t1c-headers/, study.json, info.json
    <cache>/labels/<tag>/<uid>/v0001.nii.gz   label versions (:class:`lib.datastore.labels.LabelFolder`)
    <cache>/outbox/*.dcm                      SEGs not yet accepted by the PACS; refused/ those it refused
"""

from __future__ import annotations

import hashlib
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
from pydicom.errors import InvalidDicomError

from lib.atomic import atomic_path, read_json, write_json
from lib.brats import REFERENCE_SEQUENCE, SEQUENCES, sequence_filename
from lib.dicom.seg import get_record, label_to_seg, seg_to_label, set_record
from lib.dicom.sequences import SeriesInfo, identify_sequences
from lib.dicom.volume import series_to_image
from lib.errors import (
    ConflictError,
    InputError,
    InvalidLabelError,
    MissingSequenceError,
    PacsRefusedError,
    PacsUnavailableError,
    UnknownIdError,
)
from lib.pacs.client import PacsClient
from lib.transforms.io import read_header, read_label, write_image_atomic

from .base import FINAL, MAX_FOUND_STUDIES, ORIGINAL, StudyDatastore, StudyRef
from .labels import LabelFolder, LabelVersion, shown, validate_image_id, validate_tag

logger = logging.getLogger(__name__)

LABEL_SERIES = "BrainTumorLabel"
_LABEL_DESCRIPTION = re.compile(rf"^{LABEL_SERIES} (?P<tag>[A-Za-z0-9_]+) v(?P<version>\d+)$")
#: A DICOM UID (PS3.5 9.1): components of digits, no leading zero, dot-separated, at most 64 characters.
_UID = re.compile(r"^(?=.{1,64}$)(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: Instance attributes the sequence classifier reads (QIDO-RS includefield).
CLASSIFIER_FIELDS = ("0008103E", "00181030", "00080008", "00180020", "00180080", "00180081", "00180082",
                     "00180010", "00189087", "00200011")
#: How long a study listing is reused before QIDO-RS is asked again (seconds).
LISTING_TTL_S = 5.0
#: How often the server's sender thread tries the outbox (seconds).
OUTBOX_INTERVAL_S = 30.0


@dataclass
class StudyRecord:
    """What the datastore knows of a study; cached as ``cache_dir/<uid>/study.json``."""

    uid: str
    signature: list[list[Any]]
    sequences: dict[str, str]
    descriptions: dict[str, str]
    problem: str | None
    labels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tag -> versions (PACS)


def _value(attributes: dict[str, Any], tag: str) -> str | None:
    """One attribute of a DICOM JSON object as text (a person name's Alphabetic part)."""
    values = attributes.get(tag, {}).get("Value") or []
    if not values:
        return None
    value = values[0]
    if isinstance(value, dict):
        value = value.get("Alphabetic")
    return str(value) if value not in (None, "") else None


def _study_ref(study: dict[str, Any]) -> StudyRef:
    """A QIDO-RS study result as a :class:`StudyRef`."""
    return StudyRef(str(_value(study, "0020000D")), patient_id=_value(study, "00100020"),
                    patient_name=_value(study, "00100010"), accession_number=_value(study, "00080050"),
                    study_date=_value(study, "00080020"), description=_value(study, "00081030"))


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
        self.labels = LabelFolder(self.cache / "labels")
        self.labels.clean_interrupted()
        self.algorithm = algorithm
        self._lock = threading.RLock()
        self._outbox_lock = threading.Lock()
        self._stopping = threading.Event()
        self._listing: tuple[float, list[str]] | None = None

    # ---- studies
    def list_images(self, offline_ok: bool = False) -> list[str]:
        """Study UIDs of the MR studies in the PACS. With ``offline_ok``, a PACS that is
        unavailable gives the last listing (kept in the cache) instead of an error."""
        with self._lock:
            if self._listing and time.monotonic() - self._listing[0] < LISTING_TTL_S:
                return list(self._listing[1])
        try:
            studies = self.client.studies(self.study_filter)
        except PacsUnavailableError:
            last = read_json(self.cache / "listing.json").get("studies")
            if offline_ok and last is not None:
                return list(last)
            raise
        uids = sorted(str(s["0020000D"]["Value"][0]) for s in studies if s.get("0020000D", {}).get("Value"))
        with self._lock:
            changed = self._listing is None or self._listing[1] != uids
            self._listing = (time.monotonic(), uids)
            if changed:  # kept for answering while the PACS is down
                write_json(self.cache / "listing.json", {"studies": uids})
        return uids

    def refresh(self) -> None:
        with self._lock:
            self._listing = None

    def _record_path(self, uid: str) -> Path:
        return self.cache / validate_image_id(uid) / "study.json"

    def study_record(self, uid: str, offline_ok: bool = False) -> StudyRecord:
        """The study's sequences and labels, re-read from the PACS when its series changed.
        With ``offline_ok``, a PACS that is unavailable gives the cached record, if any. An id
        that is not a DICOM UID is unknown (:class:`UnknownIdError`), without asking the PACS."""
        if not isinstance(uid, str) or not _UID.fullmatch(uid):
            raise UnknownIdError(f"unknown image id {shown(uid)} (a study here is a DICOM StudyInstanceUID: "
                                 "digits and dots, at most 64 characters)")
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
        mr: list[tuple[str, int, dict[str, Any]]] = []
        segs: list[tuple[str, int, dict[str, Any]]] = []
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

    def input_fingerprint(self, image_id: str) -> str:
        """SHA-256 of the series chosen for the four sequences and the instance count of each
        series of the study (a series added, removed or grown changes it)."""
        record = self.study_record(image_id, offline_ok=True)
        if record.problem:
            raise MissingSequenceError(record.problem, image_id)
        text = json.dumps({"sequences": record.sequences, "series": sorted(record.signature)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

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
                write_image_atomic(image, target)
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

    def study_header(self, image_id: str) -> dict[str, str]:
        """Patient and study attributes of the study's t1c series, for a report's header."""
        first = self._t1c_headers(image_id)[0]
        keywords = {"Patient": "PatientName", "Patient ID": "PatientID", "Birth date": "PatientBirthDate",
                    "Sex": "PatientSex", "Study date": "StudyDate", "Study": "StudyDescription",
                    "Accession": "AccessionNumber"}
        values = {line: str(getattr(first, keyword, "") or "") for line, keyword in keywords.items()}
        return {**{k: v for k, v in values.items() if v}, "Study UID": image_id}

    def study_ref(self, image_id: str) -> StudyRef:
        """Patient and study attributes from a QIDO-RS study query (no volume is fetched)."""
        self.study_record(image_id, offline_ok=True)  # an id that is not a UID is unknown, without a query
        found = self.client.studies({**self.study_filter, "StudyInstanceUID": image_id})
        if not found:
            raise UnknownIdError(f"unknown image id '{image_id}' (no such study in the PACS)")
        return _study_ref(found[0])

    def find_studies(self, text: str, limit: int = MAX_FOUND_STUDIES) -> list[StudyRef]:
        """QIDO-RS: the served studies whose PatientID, PatientName or AccessionNumber contains
        ``text`` (the PACS's wildcard matching, ``*text*``), at most ``limit``."""
        needle = text.strip()
        if not needle:
            return []
        if any(c in needle for c in "*?\\"):
            raise InputError("a patient search takes no wildcard or backslash characters; give part of an id, "
                             "a name or an accession number")
        found: dict[str, StudyRef] = {}
        # a person name's components (family^given) are matched each: "smith^j" looks for *smith*j*
        patterns = {"PatientID": f"*{needle}*", "PatientName": "*" + re.sub(r"[\^\s,]+", "*", needle) + "*",
                    "AccessionNumber": f"*{needle}*"}
        for keyword, pattern in patterns.items():
            for study in self.client.studies_matching({**self.study_filter, keyword: pattern}):
                ref = _study_ref(study)
                found.setdefault(ref.study, ref)
        return sorted(found.values(), key=lambda r: (r.patient_id or "", r.study_date or "", r.study))[:limit]

    @property
    def stores_dicom(self) -> bool:
        return True

    def store_dicom(self, image_id: str, datasets: list[pydicom.Dataset]) -> None:
        """STOW-RS into the PACS; each dataset must belong to the study ``image_id``."""
        for dataset in datasets:
            if str(getattr(dataset, "StudyInstanceUID", "")) != image_id:
                raise InputError(f"a DICOM object of study {getattr(dataset, 'StudyInstanceUID', None)!r} is not "
                                 f"of study '{image_id}'", image_id)
        self.client.store(datasets)

    def source_header(self, image_id: str) -> pydicom.Dataset:
        return self._t1c_headers(image_id)[0]

    def label_seg(self, image_id: str, tag: str, version: int) -> pydicom.Dataset:
        record = next((v for v in self.label_versions(image_id, tag) if v.version == version), None)
        series = record.info.get("seg_series") if record else None
        if not series:
            raise UnknownIdError(f"the label {tag} v{version} of study '{image_id}' has no SEG in the PACS")
        return self.client.retrieve_series(image_id, str(series))[0]

    def start_background_work(self) -> None:
        self.start_outbox_sender()

    def get_image_uri(self, image_id: str) -> str:
        return str(self.study_path(image_id) / sequence_filename(image_id, REFERENCE_SEQUENCE))

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        record = self.study_record(image_id)
        info: dict[str, Any] = {"name": image_id, "study_uid": image_id,
                                "sequences": {s: {"series": u, "description": record.descriptions.get(u, "")}
                                              for s, u in record.sequences.items()}}
        if record.problem:
            info["problem"] = record.problem
        return {**read_json(self.cache / image_id / "info.json"), **info}

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self.study_record(image_id, offline_ok=True)
        path = self.cache / image_id / "info.json"
        write_json(path, {**read_json(path), **info})

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        raise ConflictError("studies come from the PACS; send new studies to the PACS, not to this server")

    def remove_image(self, image_id: str) -> None:
        raise ConflictError("studies are not removed from the PACS by this server")

    # ---- labels
    def save_label_version(self, image_id: str, label_filename: str, tag: str,
                           info: dict[str, Any]) -> LabelVersion:
        """Validate the label against the study's t1c grid, keep it locally, write a SEG into
        the outbox and send it. A PACS that is down does not lose the label: it stays in
        the outbox and is sent later (the version's record says ``pending``)."""
        tag = validate_tag(tag)
        label_info = info
        reference = read_header(self.get_image_uri(image_id), image_id)
        if reference is None:
            raise InvalidLabelError("the study's t1c volume is not 3D", image_id)
        label = read_label(label_filename, reference, image_id)
        in_pacs = [v["version"] for v in self.study_record(image_id, offline_ok=True).labels.get(tag, [])]
        version = self.labels.reserve(image_id, tag, at_least=max(in_pacs, default=0) + 1)
        try:
            # the SEG is built first: a label it cannot be made from leaves nothing behind
            seg = label_to_seg(sitk.GetArrayFromImage(label), self._t1c_headers(image_id), manual=tag != ORIGINAL,
                               algorithm=self.algorithm,
                               algorithm_version=str(label_info.get("model_version", "unknown")),
                               series_number=900 + version)
            seg.SeriesDescription = f"{LABEL_SERIES} {tag} v{version}"
            set_record(seg, {**label_info, "version": version, "tag": tag, "ts": int(time.time())})
            outgoing = self.outbox / f"{int(time.time() * 1000)}-{image_id}-{tag}-v{version:04d}.dcm"
            with atomic_path(outgoing, suffix=".dcm") as tmp:
                seg.save_as(str(tmp))
            saved = self.labels.write(image_id, tag, version, label,
                                      {**label_info, "seg_series": str(seg.SeriesInstanceUID), "pending": True})
        except BaseException:
            self.labels.release(image_id, tag, version)
            raise
        self.flush_outbox()
        return saved

    def flush_outbox(self) -> int:
        """Send the SEGs waiting in the outbox, oldest first, until the PACS is unavailable.
        A SEG the PACS refuses for good (or an unreadable outbox file) is moved to
        ``outbox/refused/`` and logged, so it cannot block the labels behind it; its label
        stays in the local cache. Returns how many were sent. Called after each save and by
        :meth:`start_outbox_sender`."""
        sent = 0
        with self._outbox_lock:
            for path in self._outbox_entries():
                study, tag, version = self._outbox_key(path)
                try:
                    self.client.store([pydicom.dcmread(path)])
                except (PacsRefusedError, UnknownIdError, InvalidDicomError) as exc:
                    logger.error("label %s %s v%d refused, kept in %s: %s", study, tag, version,
                                 self.refused_dir, exc)
                    self.refused_dir.mkdir(exist_ok=True)
                    path.replace(self.refused_dir / path.name)
                    self._mark_sent(study, tag, version, refused=str(exc))
                    continue
                except PacsUnavailableError as exc:
                    logger.warning("label kept in the outbox, PACS unavailable: %s", exc)
                    break
                self._mark_sent(study, tag, version)
                path.unlink()
                sent += 1
        return sent

    def _mark_sent(self, study: str, tag: str, version: int, refused: str | None = None) -> None:
        if version in self.labels.versions(study, tag):
            update = {"pending": False, **({"refused": refused} if refused else {})}
            self.labels.update_info(study, tag, version, update)

    def start_outbox_sender(self, interval_s: float = OUTBOX_INTERVAL_S) -> threading.Thread:
        """Send the outbox every ``interval_s`` seconds from a daemon thread (what the server
        runs), so labels saved while the PACS was down reach it without another save."""
        def send_forever() -> None:
            while not self._stopping.wait(interval_s):
                if self._outbox_entries():
                    try:
                        self.flush_outbox()
                    except Exception:  # the sender must outlive any one failure
                        logger.exception("sending the outbox failed")
        thread = threading.Thread(target=send_forever, name="pacs-outbox", daemon=True)
        thread.start()
        return thread

    def stop_outbox_sender(self) -> None:
        self._stopping.set()

    def _outbox_entries(self) -> list[Path]:
        """The SEGs waiting in the outbox, oldest first (not those still being written)."""
        return sorted(p for p in self.outbox.glob("*.dcm") if not p.name.startswith("."))

    @staticmethod
    def _outbox_key(path: Path) -> tuple[str, str, int]:
        stem = path.name[: -len(".dcm")]
        _, rest = stem.split("-", 1)
        study, tag, version = rest.rsplit("-", 2)
        return study, tag, int(version[1:])

    def _pacs_versions(self, image_id: str, tag: str) -> dict[int, str]:
        """Version -> SEG series UID of the label versions in the PACS."""
        return {v["version"]: v["series"]
                for v in self.study_record(image_id, offline_ok=True).labels.get(validate_tag(tag), [])}

    def label_versions(self, image_id: str, tag: str) -> list[LabelVersion]:
        """Versions known locally or in the PACS, oldest first."""
        local = set(self.labels.versions(image_id, tag))
        in_pacs = self._pacs_versions(image_id, tag)
        return [self.labels.version_info(image_id, tag, v) if v in local
                else LabelVersion(v, {"tag": tag, "seg_series": in_pacs[v], "pending": False})
                for v in sorted(local | set(in_pacs))]

    def label_version_uri(self, image_id: str, tag: str, version: int) -> str:
        local = self.labels.path(image_id, tag, version)
        if not local.exists():
            series = self._pacs_versions(image_id, tag).get(version)
            if series is None:
                raise UnknownIdError(f"study '{image_id}' has no version {version} of its '{tag}' label")
            self._fetch_label(image_id, tag, version, series)
        return str(local)

    def _fetch_label(self, image_id: str, tag: str, version: int, series: str) -> None:
        seg = self.client.retrieve_series(image_id, series)[0]
        labels = seg_to_label(seg, self._t1c_headers(image_id))
        reference = sitk.ReadImage(self.get_image_uri(image_id))
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(reference)
        self.labels.write(image_id, tag, version, image, {**get_record(seg), "seg_series": series, "pending": False})

    def label_tags(self, image_id: str) -> list[str]:
        return sorted(set(self.study_record(image_id, offline_ok=True).labels) | set(self.labels.tags(image_id)))

    def remove_label(self, label_id: str, label_tag: str) -> None:
        raise ConflictError("label versions are kept in the PACS; save a new version instead")

    def study_problem(self, image_id: str) -> str | None:
        return self.study_record(image_id, offline_ok=True).problem

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        raise ConflictError("export a dataset from the PACS itself")

    def status(self) -> dict[str, Any]:
        """Counts, from the cache when the PACS is unavailable (``pacs_available`` says which)."""
        try:
            uids, available = self.list_images(), True
        except PacsUnavailableError:
            uids, available = self.list_images(offline_ok=True), False
        tags = self.label_counts(uids)
        return {"total": len(uids), "completed": tags.get(FINAL, 0), "label_tags": tags,
                "outbox": len(self._outbox_entries()),
                "outbox_refused": len(list(self.refused_dir.glob("*.dcm"))), "pacs_available": available}
