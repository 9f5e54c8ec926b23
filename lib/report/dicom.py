"""A signed report as DICOM objects that go into the PACS next to the study:

- an Encapsulated PDF (SOP class 1.2.840.10008.5.1.4.1.1.104.1): the PDF itself, with the
  study's patient and study attributes, MIME type, document title, burned-in annotation and
  the SEG it was measured on as its source;
- a measurement SR following TID 1500 (highdicom ``Comprehensive3DSR``): the volume of each
  segment (NCR, ED, ET) in mL, each referencing its segment of the label's DICOM SEG, observed
  by the signing clinician and by this software.

Both pass ``dciodvfy`` without errors (``tests/test_report_outputs.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lib.dicom.seg import SEGMENTS, SOFTWARE

from .document import Report

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
#: LOINC "MR Brain" as the procedure reported
MRI_BRAIN = Code("24590-2", "LN", "MR Brain")
DEVICE = hd.sr.CodedConcept("121007", "DCM", "Device")
PERSON = hd.sr.CodedConcept("121006", "DCM", "Person")
VOLUME = hd.sr.CodedConcept("118565006", "SCT", "Volume")
MILLILITER = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
_PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                      "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")


def encapsulated_pdf(pdf: bytes, study: Dataset, report: Report, *, source: Dataset | None = None,
                     series_number: int = 950) -> FileDataset:
    """The PDF as an Encapsulated PDF instance of the study that ``study`` (any of its
    instances) belongs to; ``source`` (the measured SEG) is named as its source instance."""
    now = dt.datetime.now()
    # a FileDataset so that it is written with the preamble and "DICM" that readers require
    ds = FileDataset("", Dataset(), file_meta=FileMetaDataset(), preamble=b"\0" * 128)
    for keyword in _PATIENT_AND_STUDY:
        setattr(ds, keyword, getattr(study, keyword, ""))
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"BrainTumorLabel report v{report.version}"
    ds.Manufacturer = SOFTWARE
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"Brain tumor MRI report ({'final' if report.final else 'draft'})"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [title]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    if source is not None:
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.SOPClassUID
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.SourceInstanceSequence = [reference]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    return ds


def measurement_sr(seg: Dataset, report: Report, *, series_number: int = 951) -> hd.sr.Comprehensive3DSR:
    """TID 1500: the volumes of NCR, ED and ET (mL), each referencing its segment of ``seg``."""
    observers = [hd.sr.ObserverContext(
        observer_type=DEVICE,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=SOFTWARE, manufacturer_name=SOFTWARE, model_name=report.model_version or "unknown"))]
    person = None
    if report.signed_by:
        person = hd.sr.ObserverContext(
            observer_type=PERSON,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(report.signed_by)))
    context = hd.sr.ObservationContext(observer_person_context=person, observer_device_context=observers[0])
    volumes = report.measurements.get("volumes_ml", {})
    numbers = {int(item.SegmentNumber): str(item.SegmentLabel) for item in seg.SegmentSequence}
    groups = []
    for spec in SEGMENTS:
        if spec.value not in numbers:
            continue
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                         identifier=f"{spec.label} of study {report.study}"),
            referenced_segment=_referenced_segment(seg, spec.value),
            finding_type=spec.property_type,
            measurements=[hd.sr.Measurement(name=VOLUME, value=float(volumes.get(spec.label, 0.0)), unit=MILLILITER)]))
    content = hd.sr.MeasurementReport(observation_context=context, procedure_reported=MRI_BRAIN,
                                      imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=[seg], content=content, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=SOFTWARE, is_complete=report.final,
        is_final=report.final, is_verified=report.final,
        verifying_observer_name=_person_name(report.signed_by) if report.final and report.signed_by else None,
        verifying_organization="BrainTumorLabel" if report.final else None,
        series_description=f"BrainTumorLabel measurements v{report.version}")


def _referenced_segment(seg: Dataset, number: int) -> hd.sr.ReferencedSegment:
    """Segment ``number`` of ``seg`` with its source *series* (the t1c the SEG was drawn on), so
    that the SR's evidence is the SEG alone rather than every source slice."""
    source = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    return hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                   segment_number=number,
                                   source_series=hd.sr.SourceSeriesForSegmentation(source))


def _person_name(name: str) -> str:
    """A DICOM person name from a user name (``dr.smith`` -> ``dr.smith^``); already PN: kept."""
    return name if "^" in name else f"{name}^"


def read_back(datasets: Sequence[pydicom.Dataset]) -> dict[str, pydicom.Dataset]:
    """By SOP class: the encapsulated PDF (``pdf``) and the SR (``sr``) among ``datasets``."""
    found = {}
    for ds in datasets:
        if ds.SOPClassUID == ENCAPSULATED_PDF:
            found["pdf"] = ds
        elif ds.SOPClassUID == COMPREHENSIVE_3D_SR:
            found["sr"] = ds
    return found
