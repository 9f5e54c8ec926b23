"""The contract of a study datastore: what the app, training and the coming features call.

One image id is one four-sequence MR study. Its labels are addressed by the same id under a
tag (``original``: model output, ``final``: a submitted correction), and each tag holds
numbered versions that are never replaced. The two implementations are a local folder
(:mod:`lib.datastore.study_folder`) and a DICOMweb PACS (:mod:`lib.datastore.dicomweb`);
``tests/test_datastore_contract.py`` runs every behaviour below against both.

Errors are typed (:mod:`lib.errors`): an unknown id raises :class:`UnknownIdError`, a study
that cannot be segmented :class:`MissingSequenceError`, a bad label :class:`InvalidLabelError`,
a bad tag or id :class:`InputError`, something the store does not allow :class:`ConflictError`.
They become HTTP answers at the server's boundary (:mod:`lib.server.errors`),
not here, so one method can call another and handle its errors.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag

from lib.brats import SEQUENCES
from lib.errors import ConflictError, InputError, UnknownIdError
from lib.transforms import find_case_files

from .labels import LabelVersion, validate_image_id, validate_tag

#: The tag of submitted corrections: only these count as labelled and train the model.
FINAL = DefaultLabelTag.FINAL.value
#: The tag of model output.
ORIGINAL = DefaultLabelTag.ORIGINAL.value

#: The provenance of a label version, recorded by the store from what it knows (the model that made
#: an ``original``; the ``original`` version a ``final`` corrects, and its model), never taken from
#: what a submitter says.
PROVENANCE = frozenset({"model_version", "original_version"})
#: What a store records itself with each version (not carried over when metadata is amended).
_BOOKKEEPING = frozenset({"version", "tag", "ts", "seg_series", "pending", "refused", "reserved", "source",
                          "info_of_version"})

#: The image info keys that say who and when a study is (a folder study's metadata: what was
#: given at upload, or its case folder's ``<id>-study.json``).
STUDY_REF_KEYS = ("patient_id", "patient_name", "accession_number", "study_date", "description")
#: The most studies a patient search returns.
MAX_FOUND_STUDIES = 200

__all__ = ["FINAL", "MAX_FOUND_STUDIES", "ORIGINAL", "PROVENANCE", "STUDY_REF_KEYS", "LabelVersion", "StudyDatastore",
           "StudyRef", "validate_image_id", "validate_tag"]


@dataclass(frozen=True)
class StudyRef:
    """Who and when a study is: its id, the patient's id and name, the accession number, the
    study date (YYYYMMDD) and description; None where the store does not know."""

    study: str
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def matches(self, text: str) -> bool:
        """True when ``text`` (case-insensitive) is part of the patient's id or name or of the
        accession number."""
        needle = text.strip().lower()
        return bool(needle) and any(needle in (value or "").lower()
                                    for value in (self.patient_id, self.patient_name, self.accession_number))


class StudyDatastore(Datastore):
    """A MONAI Label datastore in which one image id is one study (see the module docstring).

    Subclasses implement the study and label primitives (the abstract methods below and
    MONAI Label's ``list_images``, ``get_image_uri``, ``get_image_info``, ``save_label``, ...);
    the label bookkeeping MONAI Label asks for is derived here from them, once.
    """

    def __init__(self, name: str, description: str) -> None:
        self._name, self._description = name, description

    # ---- studies
    @abstractmethod
    def study_path(self, image_id: str) -> Path:
        """The study as the preprocessing reads it (a case folder in BraTS naming or a
        4-channel file), local and complete. Raises :class:`UnknownIdError` for an unknown
        id and :class:`MissingSequenceError` for a study that cannot be segmented."""

    @abstractmethod
    def study_problem(self, image_id: str) -> str | None:
        """Why the study cannot be segmented (a missing or ambiguous sequence), or None."""

    @abstractmethod
    def input_fingerprint(self, image_id: str) -> str:
        """A digest of the study's four input series as stored (their content, or for a PACS their
        instances): two studies with the same fingerprint give the model the same input, and
        a changed series changes it. What caches of results are keyed by."""

    def study_header(self, image_id: str) -> dict[str, str]:
        """Lines that identify the study on a report (a PACS study gives patient and study
        attributes; a folder study only its id)."""
        self.get_image_info(image_id)
        return {"Study": image_id}

    def study_ref(self, image_id: str) -> StudyRef:
        """Who and when the study is, from its image info (:data:`STUDY_REF_KEYS`); a PACS
        store asks the PACS."""
        info = self.get_image_info(image_id)
        return StudyRef(image_id, **{k: (str(info[k]) if info.get(k) not in (None, "") else None)
                                     for k in STUDY_REF_KEYS})

    def find_studies(self, text: str, limit: int = MAX_FOUND_STUDIES) -> list[StudyRef]:
        """The studies whose patient id, patient name or accession number contains ``text``
        (case-insensitive), at most ``limit``, oldest first within a patient. This default reads
        every study's image info (a folder); a PACS store asks the PACS (QIDO-RS)."""
        found = [ref for ref in (self.study_ref(i) for i in self.list_images()) if ref.matches(text)]
        return sorted(found, key=lambda r: (r.patient_id or "", r.study_date or "", r.study))[:limit]

    def sequence_uri(self, image_id: str, sequence: str) -> str:
        """A local NIfTI file of one sequence of a complete study (what a viewer loads).
        Raises :class:`InputError` for a name that is not one of t1n, t1c, t2w, t2f."""
        if sequence not in SEQUENCES:
            raise InputError(f"'{sequence}' is not a sequence; the sequences are {', '.join(SEQUENCES)}")
        files = find_case_files(self.study_path(image_id), image_id)
        if files.sequences is None:
            raise InputError(f"study '{image_id}' is one 4-channel file; its sequences are not separate files",
                             image_id)
        return str(files.sequences[sequence])

    # ---- DICOM (a PACS)
    @property
    def stores_dicom(self) -> bool:
        """True when the store keeps DICOM objects next to its studies (a PACS): then
        :meth:`store_dicom`, :meth:`source_header` and :meth:`label_seg` work."""
        return False

    def store_dicom(self, image_id: str, datasets: list[pydicom.Dataset]) -> None:
        """Store DICOM objects (a report's Encapsulated PDF, an SR) in the study ``image_id``.
        A store without DICOM raises :class:`ConflictError`."""
        raise ConflictError("this study is not in a PACS; download the PDF instead")

    def source_header(self, image_id: str) -> pydicom.Dataset:
        """One t1c instance of the study, without its pixels: the patient and study a new DICOM
        object of the study belongs to. A store without DICOM raises :class:`ConflictError`."""
        raise ConflictError("this study is not in a PACS; it has no DICOM header")

    def label_seg(self, image_id: str, tag: str, version: int) -> pydicom.Dataset:
        """The DICOM SEG of one label version (what a measurement SR references). A store
        without DICOM raises :class:`ConflictError`."""
        raise ConflictError("this study is not in a PACS; its labels have no DICOM SEG")

    def start_background_work(self) -> None:
        """Start what the store does while the server runs (a PACS store sends the labels saved
        while the PACS was down); nothing for a folder."""

    # ---- labels
    @abstractmethod
    def save_label_version(self, image_id: str, label_filename: str, tag: str,
                           info: dict[str, Any]) -> LabelVersion:
        """Validate a label file and store it as the next version under ``tag``, with ``info``
        recorded next to it (and the time). Raises :class:`UnknownIdError`,
        :class:`InvalidLabelError` or :class:`InputError` (a bad tag); on any error nothing is stored."""

    def add_label(self, image_id: str, label_filename: str, tag: str, info: dict[str, Any], *,
                  model_version: str | None = None, original_version: int | None = None) -> LabelVersion:
        """Store a label as the next version of ``tag`` (:meth:`save_label_version`).

        ``info`` is what the submitter says about it (who, how long it took, ...); the store
        writes the bookkeeping (version, time) and the provenance (:data:`PROVENANCE`) itself
        and drops any such key from ``info``. An ``original`` label records ``model_version``,
        the model that made it (the server's inference gives it). A ``final`` label records the
        model output it corrects and that output's model version: the ``original`` version
        ``original_version`` when the submitter names one (:class:`InputError` when it does not
        exist), else the newest."""
        tag = validate_tag(tag or FINAL)
        record = {k: v for k, v in info.items() if k not in _BOOKKEEPING and k not in PROVENANCE}
        if tag != FINAL and model_version is not None:
            record["model_version"] = model_version
        if tag == FINAL:
            record.update(self._corrected_original(image_id, original_version))
        return self.save_label_version(image_id, label_filename, tag, record)

    def _corrected_original(self, image_id: str, named: int | None) -> dict[str, Any]:
        """The provenance of a correction: the ``original`` version it starts from and its model."""
        originals = self.label_versions(image_id, ORIGINAL) if ORIGINAL in self.label_tags(image_id) else []
        if named is None:
            chosen = originals[-1] if originals else None
        else:
            chosen = next((v for v in originals if v.version == named), None)
            if chosen is None:
                have = ", ".join(str(v.version) for v in originals) or "none"
                raise InputError(f"image '{image_id}' has no model output (original label) version {named} to "
                                 f"correct; its versions: {have}", image_id)
        if chosen is None:
            return {}
        return {"original_version": chosen.version, "model_version": chosen.info.get("model_version")}

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """MONAI Label's save, for callers in this process (the HTTP edge calls :meth:`add_label`):
        :meth:`add_label` with a model output's ``model_version`` taken from ``label_info``;
        returns the label id (the image id)."""
        tag = validate_tag(label_tag or FINAL)
        model_version = label_info.get("model_version") if tag != FINAL else None
        self.add_label(image_id, label_filename, tag, label_info,
                       model_version=None if model_version is None else str(model_version))
        return image_id

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        """Changed metadata is a new version (the same voxels, the merged record, and
        ``info_of_version`` naming the version it amends): no record is ever edited in place.
        The provenance (:data:`PROVENANCE`) is the amended version's; ``info`` cannot change it."""
        latest = self.latest_label(label_id, label_tag)
        path = self.label_version_uri(label_id, label_tag, latest.version)  # fetched first when only in a PACS
        amended = {k: v for k, v in info.items() if k not in PROVENANCE}
        record = {k: v for k, v in {**latest.info, **amended}.items() if k not in _BOOKKEEPING}
        self.save_label_version(label_id, path, label_tag, {**record, "info_of_version": latest.version})

    @abstractmethod
    def label_tags(self, image_id: str) -> list[str]:
        """The tags under which ``image_id`` has at least one label version, sorted."""

    @abstractmethod
    def label_versions(self, image_id: str, tag: str) -> list[LabelVersion]:
        """Every stored version of a label, oldest first (empty when there is none)."""

    @abstractmethod
    def label_version_uri(self, image_id: str, tag: str, version: int) -> str:
        """A local file (NIfTI, on the study's t1c grid) holding one version of a label.
        Raises :class:`UnknownIdError` when that version does not exist."""

    def latest_label(self, image_id: str, tag: str) -> LabelVersion:
        """The newest version of a label; :class:`UnknownIdError` when there is none."""
        versions = self.label_versions(image_id, validate_tag(tag))
        if not versions:
            raise UnknownIdError(f"image '{image_id}' has no label with tag '{tag}'")
        return versions[-1]

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return self.label_version_uri(label_id, label_tag, self.latest_label(label_id, label_tag).version)

    def get_label(self, label_id: str, label_tag: str, params: dict[str, Any] | None = None) -> BinaryIO:
        return open(self.get_label_uri(label_id, label_tag), "rb")  # noqa: SIM115 - the caller closes it

    def get_image(self, image_id: str, params: dict[str, Any] | None = None) -> BinaryIO:
        return open(self.get_image_uri(image_id), "rb")  # noqa: SIM115 - the caller streams and closes it

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        """The newest version's record, with ``version`` and the number of ``versions``."""
        versions = self.label_versions(label_id, validate_tag(label_tag))
        if not versions:
            raise UnknownIdError(f"image '{label_id}' has no label with tag '{label_tag}'")
        return {**versions[-1].as_dict(), "versions": len(versions)}

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """Tag -> label id (the image id), for every tag that has a label."""
        return {tag: image_id for tag in self.label_tags(image_id)}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        return image_id if tag in self.label_tags(image_id) else ""

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        tag = label_tag or FINAL
        return [i for i in self.list_images() if tag in self.label_tags(i)]

    def get_unlabeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        """Studies to annotate: no label under the tag yet, and all four sequences there (a study
        that cannot be segmented is not offered by the active-learning strategies)."""
        tag = label_tag or FINAL
        return [i for i in self.list_images() if tag not in self.label_tags(i) and not self.study_problem(i)]

    def datalist(self) -> list[dict[str, Any]]:
        """Training pairs ``{"case_id", "image": <study path>, "label": <newest final label>,
        "label_version": <its number>}`` of the studies that can be segmented and have a
        ``final`` label."""
        pairs = []
        for image_id in self.get_labeled_images(FINAL):
            if self.study_problem(image_id):
                continue
            newest = self.latest_label(image_id, FINAL).version  # listed once per study
            pairs.append({"case_id": image_id, "image": str(self.study_path(image_id)),
                          "label": self.label_version_uri(image_id, FINAL, newest), "label_version": newest})
        return pairs

    def label_counts(self, image_ids: list[str]) -> dict[str, int]:
        """Tag -> number of studies among ``image_ids`` that have a label under it."""
        counts: dict[str, int] = {}
        for image_id in image_ids:
            for tag in self.label_tags(image_id):
                counts[tag] = counts.get(tag, 0) + 1
        return counts

    def status(self) -> dict[str, Any]:
        ids = self.list_images()
        tags = self.label_counts(ids)
        return {"total": len(ids), "completed": tags.get(FINAL, 0), "label_tags": tags}

    def json(self) -> dict[str, Any]:
        objects = {}
        for image_id in self.list_images():
            labels = {}
            for tag in self.label_tags(image_id):
                versions = self.label_versions(image_id, tag)
                labels[tag] = {"info": versions[-1].as_dict(), "versions": len(versions)}
            objects[image_id] = {"image": self.get_image_info(image_id), "labels": labels}
        return {"name": self._name, "description": self._description, "objects": objects}

    # ---- naming
    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def description(self) -> str:
        return self._description

    def set_description(self, description: str) -> None:
        self._description = description
