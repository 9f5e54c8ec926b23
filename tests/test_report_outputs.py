"""The clinical report end to end on a toy head with a prior: findings reviewed and signed, the PDF
(text extracted and pages rendered), and the DICOM outputs (Encapsulated PDF and TID 1500 SR)
valid for dciodvfy and read back from a real Orthanc next to the study."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pypdf import PdfReader

from lib.dicom.seg import label_to_seg
from lib.dicom.volume import series_to_image
from lib.errors import ConflictError, InputError
from lib.pacs.client import PacsClient, PacsConfig
from lib.pacs.sandbox import start_orthanc
from lib.report.build import StudyInputs, draft_report
from lib.report.dicom import COMPREHENSIVE_3D_SR, ENCAPSULATED_PDF, encapsulated_pdf, measurement_sr
from lib.report.pdf import write_pdf
from lib.report.response import ClinicalInputs
from synthbrats.dicom_export import StudyPlan, export_case

from _volumes import sphere_case, write_case


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[StudyInputs, StudyInputs]:
    """A study and its prior: the same head, the enhancing shell thicker before (it shrank)."""
    root = tmp_path_factory.mktemp("report-cases")
    images, label = sphere_case(size=(60, 60, 48), spacing=(2.0, 2.0, 2.0))
    current = write_case(root / "current", "current", images, label)
    before = sitk.GetArrayFromImage(label)
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.Equal(label, 3), [3, 3, 3]))
    before[(grown > 0) & (before == 2)] = 3
    prior_label = sitk.GetImageFromArray(before)
    prior_label.CopyInformation(label)
    prior = write_case(root / "prior", "prior", images, prior_label)
    return (StudyInputs("current", current, current / "current-seg.nii.gz", {"tag": "final", "version": 2}),
            StudyInputs("prior", prior, prior / "prior-seg.nii.gz", {"tag": "final", "version": 1}))


@pytest.fixture(scope="module")
def draft(pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    report = draft_report(pair[0], pair[1], model_version="model-x", images_path=folder / "images.png",
                          clinical=ClinicalInputs(steroid_dose="none", clinical_status="stable"))
    return report, folder


def test_a_draft_has_ai_findings_to_review_and_the_response_to_the_prior(draft):
    report, folder = draft
    assert not report.final and all(f.ai_derived and f.state == "proposed" for f in report.findings)
    assert [f.key for f in report.findings] == ["volumes", "lesions", "rano", "laterality", "response"]
    assert report.response["region_changes"]["ET"]["change_ml"] < 0
    assert report.model_version == "model-x" and report.label == {"tag": "final", "version": 2}
    assert (folder / "images.png").stat().st_size > 10_000


def test_nothing_is_final_until_every_finding_is_reviewed(draft):
    report, _ = draft
    with pytest.raises(ConflictError, match="not reviewed"):
        report.signed("dr.smith", "Smaller enhancing tumor.", "")
    for finding in report.findings[:-1]:
        report = report.reviewed(finding.key, "approved", "dr.smith")
    report = report.reviewed("response", "edited", "dr.smith", text="Partial response.")
    with pytest.raises(InputError, match="impression"):
        report.signed("dr.smith", " ", "")
    signed = report.signed("dr.smith", "Smaller enhancing tumor.", "Follow-up in 8 weeks.")
    assert signed.final and signed.signed_by == "dr.smith"
    assert signed.finding("response").shown_text == "Partial response."
    with pytest.raises(ConflictError, match="signed"):
        signed.reviewed("volumes", "declined", "dr.jones")


def test_the_pdf_says_what_was_reviewed_and_renders(draft, tmp_path):
    report, folder = draft
    report = report.reviewed("lesions", "declined", "dr.smith")
    path = write_pdf(report, tmp_path / "draft.pdf", folder / "images.png")
    text = " ".join(page.extract_text() for page in PdfReader(str(path)).pages)
    assert "DRAFT" in text and "Whole tumor" in text and "declined by dr.smith" in text and "RANO 2.0" in text
    assert "Measurements and findings marked AI" in text
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages and all(p.stat().st_size > 5_000 for p in pages)


@pytest.fixture(scope="module")
def pacs_study(tmp_path_factory):
    """A generated study as DICOM in a real Orthanc, with a SEG of its label."""
    from synthbrats import GeneratorConfig, generate_case
    from synthbrats import write_case as write_generated

    root = tmp_path_factory.mktemp("report-pacs")
    case = write_generated(generate_case(63, 0, GeneratorConfig(spacing=2.0, style="brats")), root / "cases")
    record = export_case(case, root / "dicom", np.random.default_rng(0), StudyPlan("ge", "Gadobutrol", (), None))
    t1c = [pydicom.dcmread(f) for f in sorted((root / "dicom" / case.name).glob("*-t1c/*.dcm"))]
    with start_orthanc() as orthanc:
        orthanc.upload_folder(root / "dicom")
        yield orthanc, record, case, t1c


def test_the_signed_report_goes_to_the_pacs_as_valid_encapsulated_pdf_and_sr(draft, pacs_study, tmp_path):
    orthanc, record, case, t1c = pacs_study
    report, folder = draft
    for finding in report.findings:
        report = report.reviewed(finding.key, "approved", "dr.smith")
    report = report.signed("dr.smith", "Smaller enhancing tumor.", "")
    reference = series_to_image(t1c, "t1c")  # the grid a SEG of this series is on
    truth = sitk.ReadImage(str(next(case.glob("*-seg.nii.gz"))))
    label = sitk.Resample(truth, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    seg = label_to_seg(sitk.GetArrayFromImage(label).astype(np.uint8), t1c, manual=True,
                       algorithm="brats_segresnet", algorithm_version="model-x")
    pdf = write_pdf(report, tmp_path / "final.pdf", folder / "images.png").read_bytes()
    objects = [encapsulated_pdf(pdf, t1c[0], report, source=seg), measurement_sr(seg, report)]
    if shutil.which("dciodvfy"):
        for i, ds in enumerate(objects):
            ds.save_as(str(tmp_path / f"{i}.dcm"), write_like_original=False)
            out = subprocess.run(["dciodvfy", str(tmp_path / f"{i}.dcm")], capture_output=True, text=True)
            assert "Error" not in out.stdout + out.stderr, out.stderr[-2000:]
    client = PacsClient(PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password))
    client.store([seg, *objects])
    series = {s["0020000E"]["Value"][0]: s for s in client.series(record["study_uid"], fields=("00080060",))}
    read = {ds.SOPClassUID: ds for uid in (objects[0].SeriesInstanceUID, objects[1].SeriesInstanceUID)
            for ds in client.retrieve_series(record["study_uid"], str(uid)) if uid in series}
    assert read[ENCAPSULATED_PDF].EncapsulatedDocument[:4] == b"%PDF"
    assert read[ENCAPSULATED_PDF].MIMETypeOfEncapsulatedDocument == "application/pdf"
    sr = read[COMPREHENSIVE_3D_SR]
    assert sr.VerificationFlag == "VERIFIED" and sr.CompletionFlag == "COMPLETE"
    groups = hd.sr.MeasurementReport.from_sequence([sr]).get_volumetric_roi_measurement_groups()
    measured = {g.tracking_identifier.split()[0]: (g.referenced_segment.referenced_segment_numbers,
                                                   g.get_measurements()[0].value) for g in groups}
    assert measured["NCR"][0] == [1] and measured["ET"][0] == [3]
    assert measured["ET"][1] == pytest.approx(report.measurements["volumes_ml"]["ET"], rel=1e-3)
