"""The Report section's calls against a real server: a draft of a follow-up against its prior,
each AI finding reviewed, the report signed and its PDF downloaded; what a clinician meets when
a study has no label yet, when they sign too early, or when the study is not in a PACS."""

from __future__ import annotations

from pathlib import Path

import pytest

from _server import monailabel_server
from _server_side import task
from BrainTumorLabelLib.client import RequestRefused, ServerClient
from BrainTumorLabelLib.report import CLINICAL_STATUSES, STEROID_DOSES, finding_rows, status_line, to_review

BASELINE, FOLLOW_UP = "Patient7-baseline", "Patient7-followup"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[ServerClient, Path]:
    """Two scans of one head: the enhancing shell was thicker at baseline (it shrank since)."""
    root, labels = tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("labels")
    task("report_studies", root=root, labels=labels, baseline=BASELINE, follow_up=FOLLOW_UP)
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield ServerClient(url), labels


def test_a_study_without_a_label_cannot_be_reported(served):
    client, _ = served
    with pytest.raises(RequestRefused, match="no label") as refused:
        client.draft_report(BASELINE)
    assert refused.value.status == 404


def test_draft_review_sign_and_download_the_pdf(served, tmp_path):
    client, labels = served
    for study in (BASELINE, FOLLOW_UP):
        client.submit_label(study, labels / f"{study}.nii.gz", {"annotator": "dr.jones"})
    draft = client.draft_report(FOLLOW_UP, prior=BASELINE, steroid_dose="stable", clinical_status="stable")
    assert not draft["final"] and draft["label"]["tag"] == "final"
    assert {f["state"] for f in draft["findings"]} == {"proposed"}
    assert draft["response"]["region_changes"]["ET"]["change_ml"] < 0
    assert [r.review for r in finding_rows(draft)] == ["AI, to review"] * len(draft["findings"])
    assert "0 of" in status_line(draft) and to_review(draft) == [f["key"] for f in draft["findings"]]
    with pytest.raises(RequestRefused, match="not reviewed") as early:
        client.sign_report(FOLLOW_UP, "Smaller enhancing tumor.")
    assert early.value.status == 409
    keys = [f["key"] for f in draft["findings"]]
    for key in keys[:-1]:
        client.review_finding(FOLLOW_UP, key, "approved")
    edited = client.review_finding(FOLLOW_UP, keys[-1], "edited", "Partial response, to be confirmed.")
    assert finding_rows(edited)[-1].text == "Partial response, to be confirmed."
    assert finding_rows(edited)[-1].review.startswith("edited by") and not to_review(edited)
    signed = client.sign_report(FOLLOW_UP, "Smaller enhancing tumor.", "MRI in 8 weeks.")
    assert signed["final"] and signed["version"] > draft["version"] and "signed by" in status_line(signed)
    assert client.report(FOLLOW_UP)["version"] == signed["version"]
    images = client.download_report_images(FOLLOW_UP, tmp_path / "key-images.png")
    assert images.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = client.download_report_pdf(FOLLOW_UP, tmp_path / "report.pdf")
    text = task("pdf_text", path=pdf)
    assert "Smaller enhancing tumor." in text and "Partial response, to be confirmed." in text


def test_a_folder_study_is_not_sent_to_a_pacs(served):
    client, _ = served
    with pytest.raises(RequestRefused, match="not in a PACS") as refused:
        client.publish_report(FOLLOW_UP)
    assert refused.value.status == 409


def test_the_panel_offers_the_clinical_inputs_the_server_accepts(server_tables):
    server = server_tables
    assert sorted(STEROID_DOSES) == server["steroid_doses"] and sorted(CLINICAL_STATUSES) == server["clinical_statuses"]
