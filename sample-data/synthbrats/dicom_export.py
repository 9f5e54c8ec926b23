"""Generated cases as DICOM MR studies: one series per sequence, with the naming of real sites.

Each study gets a site naming profile (GE-, Siemens-, Philips-like, generic, or missing and
misleading descriptions), acquisition parameters typical of each sequence (TR, TE, TI,
scanning sequence), a contrast agent on T1c or not, and, for some studies, extra series
(a three-plane localizer, diffusion) or a missing sequence. The geometry is that of the
NIfTI each series comes from: ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
SliceThickness and SpacingBetweenSlices are written from its origin, direction and spacing,
and the int16 voxels are stored unchanged, so a reader can rebuild the same volume.

    synthbrats-dicom --cases sample-data/generated --out sample-data/dicom [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SEQUENCES = ("t1n", "t1c", "t2w", "t2f")

#: Series descriptions per naming profile; None = the attribute is left out.
NAMING: dict[str, dict[str, str | None]] = {
    "ge": {"t1n": "AX T1 PRE", "t1c": "AX T1 POST GD", "t2w": "AX T2 FSE", "t2f": "AX T2 FLAIR"},
    "siemens": {"t1n": "t1_mprage_sag_p2_iso", "t1c": "t1_mprage_sag_p2_iso_post", "t2w": "t2_tse_tra",
                "t2f": "t2_tirm_tra_dark-fluid"},
    "philips": {"t1n": "T1W_SE", "t1c": "T1W_SE_GD", "t2w": "T2W_TSE", "t2f": "FLAIR_AX"},
    "generic": {"t1n": "T1 MPRAGE", "t1c": "T1 MPRAGE +C", "t2w": "T2 AX", "t2f": "FLAIR"},
    # descriptions that do not help: the classifier must use the acquisition parameters
    "undescribed": {"t1n": None, "t1c": None, "t2w": None, "t2f": None},
    "misleading": {"t1n": "MR BRAIN", "t1c": "MR BRAIN", "t2w": "SERIES 3", "t2f": "ax t2"},
}
MANUFACTURER = {"ge": "GE MEDICAL SYSTEMS", "siemens": "SIEMENS", "philips": "Philips Medical Systems"}


@dataclass(frozen=True)
class Acquisition:
    """Acquisition attributes of one series (times in ms)."""

    repetition_time: float
    echo_time: float
    inversion_time: float | None
    scanning_sequence: str
    sequence_variant: str
    acquisition_type: str
    contrast_agent: str | None = None


def acquisition_for(sequence: str, rng: np.random.Generator, contrast_agent: str | None) -> Acquisition:
    """Typical parameters: 3D MPRAGE or 2D spin-echo T1, turbo spin-echo T2, inversion-recovery FLAIR."""
    if sequence in ("t1n", "t1c"):
        agent = contrast_agent if sequence == "t1c" else None
        if rng.random() < 0.6:
            return Acquisition(float(rng.uniform(1800, 2300)), float(rng.uniform(2.2, 3.5)),
                               float(rng.uniform(850, 1100)), "GR\\IR", "SP\\MP", "3D", agent)
        return Acquisition(float(rng.uniform(400, 700)), float(rng.uniform(8, 15)), None, "SE", "SK", "2D", agent)
    if sequence == "t2w":
        return Acquisition(float(rng.uniform(3000, 6500)), float(rng.uniform(80, 120)), None, "SE", "SK", "2D")
    return Acquisition(float(rng.uniform(7000, 11000)), float(rng.uniform(80, 140)), float(rng.uniform(2200, 2800)),
                       "SE\\IR", "SK\\SP\\MP", "2D")


@dataclass
class StudyPlan:
    """What one exported study looks like (drawn per case from the seed)."""

    naming: str
    contrast_agent: str | None
    extra_series: tuple[str, ...]
    missing: str | None


def draw_plan(rng: np.random.Generator, missing_probability: float = 0.15) -> StudyPlan:
    naming = str(rng.choice(list(NAMING)))
    agents = ["Gadobutrol", "GADAVIST", "DOTAREM 0.5 mmol/ml", "Gd-DTPA"]
    agent = str(rng.choice(agents)) if rng.random() < 0.6 else None
    extras = tuple(s for s, p in (("localizer", 0.6), ("dwi", 0.4)) if rng.random() < p)
    missing = str(rng.choice(SEQUENCES)) if rng.random() < missing_probability else None
    return StudyPlan(naming, agent, extras, missing)


def _base_dataset(study: dict[str, Any], series_uid: str, series_number: int, description: str | None,
                  manufacturer: str, frame_of_reference: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientName, ds.PatientID = study["patient_name"], study["patient_id"]
    ds.PatientBirthDate, ds.PatientSex = study["birth_date"], study["sex"]
    ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study["uid"], "1", study["accession"]
    ds.StudyDate, ds.StudyTime = study["date"], "101500"
    ds.SeriesDate, ds.SeriesTime = study["date"], f"10{20 + series_number:02d}00"
    ds.StudyDescription = "MRI BRAIN WITH AND WITHOUT CONTRAST"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, series_number
    if description is not None:
        ds.SeriesDescription = description
        ds.ProtocolName = description
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
    ds.Manufacturer, ds.InstitutionName = manufacturer, "BrainTumorLabel synthetic site"
    ds.BodyPartExamined, ds.PatientPosition = "BRAIN", "HFS"
    ds.MagneticFieldStrength = 3.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _set_acquisition(ds: Dataset, acq: Acquisition, image_type: str = "ORIGINAL\\PRIMARY\\OTHER") -> None:
    ds.ImageType = image_type.split("\\")
    ds.ScanningSequence = acq.scanning_sequence.split("\\")
    ds.SequenceVariant = acq.sequence_variant.split("\\")
    ds.ScanOptions = ""
    ds.MRAcquisitionType = acq.acquisition_type
    ds.RepetitionTime, ds.EchoTime = round(acq.repetition_time, 2), round(acq.echo_time, 2)
    ds.EchoTrainLength = 1 if acq.scanning_sequence.startswith("GR") else 16
    if acq.inversion_time is not None:
        ds.InversionTime = round(acq.inversion_time, 2)
    if acq.contrast_agent is not None:
        ds.ContrastBolusAgent = acq.contrast_agent
        ds.ContrastBolusRoute = "IV"


def write_volume_series(image: sitk.Image, out_dir: Path, template: Dataset) -> int:
    """Write a 3D int16 image as one MR instance per slice along its third axis."""
    out_dir.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    voxels = sitk.GetArrayFromImage(image)  # (Z, Y, X)
    if voxels.dtype != np.int16:
        raise ValueError(f"expected int16 voxels, got {voxels.dtype}")
    for k in range(voxels.shape[0]):
        ds = Dataset()
        ds.update(template)
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*direction[:, 0], *direction[:, 1])]
        position = origin + k * spacing[2] * direction[:, 2]
        ds.ImagePositionPatient = [round(float(v), 6) for v in position]
        ds.SliceLocation = round(float(position @ direction[:, 2]), 6)
        ds.PixelSpacing = [round(float(spacing[1]), 6), round(float(spacing[0]), 6)]
        ds.SliceThickness = round(float(spacing[2]), 6)
        ds.SpacingBetweenSlices = round(float(spacing[2]), 6)
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[2]
        ds.PixelData = np.ascontiguousarray(voxels[k]).tobytes()
        _save(ds, out_dir / f"{k + 1:04d}.dcm")
    return voxels.shape[0]


def _save(ds: Dataset, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(str(path), write_like_original=False)


def _localizer(reference: sitk.Image) -> list[sitk.Image]:
    """Three single-slice orthogonal planes through the centre of ``reference`` (int16)."""
    size = np.asarray(reference.GetSize())
    planes = []
    for axis in range(3):
        extract = [int(s) for s in size]
        extract[axis] = 1
        index = [0, 0, 0]
        index[axis] = int(size[axis] // 2)
        plane = sitk.Extract(reference, extract, index)
        # the plane's single-voxel axis becomes the slice axis
        planes.append(sitk.PermuteAxes(plane, [a for a in range(3) if a != axis] + [axis]))
    return planes


def export_case(case_dir: Path, out_root: Path, rng: np.random.Generator, plan: StudyPlan | None = None) -> dict:
    """Export one generated case folder as a DICOM study under ``out_root/<case id>/``.
    Returns the study record (UIDs, naming, series per sequence) also written as JSON."""
    case_id = case_dir.name
    plan = plan or draw_plan(rng)
    study = {"uid": generate_uid(), "patient_id": f"SYN-{case_id[-9:]}", "patient_name": f"Synthetic^{case_id[-9:]}",
             "birth_date": f"19{int(rng.integers(40, 99))}0101", "sex": str(rng.choice(["F", "M"])),
             "date": (dt.date(2026, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300)))).strftime("%Y%m%d"),
             "accession": f"A{int(rng.integers(1e6, 1e7))}"}
    sidecar = case_dir / f"{case_id}-study.json"  # the patient and date the case folder says, when it says
    if sidecar.is_file():
        said = json.loads(sidecar.read_text())
        study.update({"patient_id": said["patient_id"], "patient_name": said["patient_name"],
                      "date": said["study_date"], "accession": said["accession_number"]})
    frame_of_reference = generate_uid()
    manufacturer = MANUFACTURER.get(plan.naming, "Generic MR")
    record: dict[str, Any] = {"case_id": case_id, "study_uid": study["uid"], "naming": plan.naming,
                              "contrast_agent": plan.contrast_agent, "missing": plan.missing, "series": {}}
    out_dir = out_root / case_id
    number = 1
    images = {s: sitk.ReadImage(str(next(case_dir.glob(f"*-{s}.nii*")))) for s in SEQUENCES}
    if "localizer" in plan.extra_series:
        uid = generate_uid()
        template = _base_dataset(study, uid, number, "3-PLANE LOC" if plan.naming == "ge" else "localizer",
                                 manufacturer, frame_of_reference)
        _set_acquisition(template, Acquisition(8.6, 4.0, None, "GR", "SP", "2D"), "ORIGINAL\\PRIMARY\\LOCALIZER")
        for i, plane in enumerate(_localizer(images["t1n"])):
            plane_template = Dataset()
            plane_template.update(template)
            write_volume_series(sitk.Cast(plane, sitk.sitkInt16), out_dir / f"{number:02d}-localizer-{i}",
                                plane_template)
        record["series"]["localizer"] = uid
        number += 1
    for seq in SEQUENCES:
        if seq == plan.missing:
            continue
        uid = generate_uid()
        template = _base_dataset(study, uid, number, NAMING[plan.naming][seq], manufacturer, frame_of_reference)
        _set_acquisition(template, acquisition_for(seq, rng, plan.contrast_agent))
        write_volume_series(sitk.Cast(images[seq], sitk.sitkInt16), out_dir / f"{number:02d}-{seq}", template)
        record["series"][seq] = uid
        number += 1
    if "dwi" in plan.extra_series:
        uid = generate_uid()
        template = _base_dataset(study, uid, number, "DWI b1000" if plan.naming != "siemens" else "ep2d_diff_tra",
                                 manufacturer, frame_of_reference)
        _set_acquisition(template, Acquisition(float(rng.uniform(4000, 8000)), float(rng.uniform(60, 95)), None,
                                               "EP", "SK\\SP", "2D"))
        template.DiffusionBValue = 1000
        dwi = sitk.Shrink(sitk.Cast(images["t2w"], sitk.sitkInt16), [2, 2, 2])
        write_volume_series(dwi, out_dir / f"{number:02d}-dwi", template)
        record["series"]["dwi"] = uid
    (out_dir / "study.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=Path, required=True, help="folder of generated case folders")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--missing-probability", type=float, default=0.15)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for case_dir in sorted(p for p in args.cases.iterdir() if p.is_dir() and p.name.startswith("SynBraTS")):
        record = export_case(case_dir, args.out, rng, draw_plan(rng, args.missing_probability))
        print(f"{record['case_id']}: {record['naming']}, agent {record['contrast_agent']}, "
              f"series {list(record['series'])}, missing {record['missing']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
