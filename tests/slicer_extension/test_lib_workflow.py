"""What the panel's buttons do, apart from the GUI, and the self-test's server: a server the
self-test starts from a command answers, is connected to as Connect does, and is gone after."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from _server_side import server_python
from BrainTumorLabelLib import workflow
from BrainTumorLabelLib.client import ServerClient, StudyRow
from BrainTumorLabelLib.selftest import SKIP_MESSAGE, self_test_server

ROWS = [StudyRow("Case-001", True, ("t1n", "t1c", "t2w", "t2f"), None),
        StudyRow("Case-002", False, ("t1n", "t1c", "t2w"), "sequence 't2f' is missing")]


def test_the_self_test_server_is_started_connected_to_and_stopped(tmp_path):
    command = f"{server_python().parent / 'btl-server'} --studies {tmp_path}"  # no study yet
    with self_test_server({"BTL_SERVER_COMMAND": command}) as url:
        connection = workflow.connect(ServerClient(url))
        assert not connection.login_required and connection.status.startswith("BrainTumorLabel")
        assert "random" in connection.strategies and connection.rows == ()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/auth/", timeout=2)


def test_a_given_server_is_used_as_it_is_and_none_given_is_said():
    with self_test_server({"BTL_SERVER_URL": "http://pacs-side:8000"}) as url:
        assert url == "http://pacs-side:8000"
    with self_test_server({}) as url:
        assert url is None
    assert "BTL_SERVER_URL" in SKIP_MESSAGE and "BTL_SERVER_COMMAND" in SKIP_MESSAGE


def test_the_studies_table_rows_filter_and_priors():
    assert workflow.filter_rows(ROWS, " case-002 ") == [ROWS[1]]
    assert workflow.study_cells(ROWS[0]) == ("Case-001", "yes", "t1n t1c t2w t2f", "")
    assert workflow.study_cells(ROWS[1])[3] == "sequence 't2f' is missing"
    assert workflow.prior_choices(ROWS) == ["(none)", "Case-001"]
    assert workflow.prior_for_report("(none)", "Case-002") is None
    assert workflow.prior_for_report("Case-002", "Case-002") is None
    assert workflow.prior_for_report("Case-001", "Case-002") == "Case-001"


def test_what_the_panel_says_after_segmenting_and_training():
    assert workflow.segmented_status("brats-2mm", ("t2f has no signal", "registered to t1c")) == \
        "Segmented by brats-2mm. Note: t2f has no signal. Note: registered to t1c."
    assert workflow.training_progress({"epoch": 2, "max_epochs": 4, "best_dice": {"WT": 0.812}}, 4) == \
        ("epoch 2/4, best validation Dice WT 0.81", 0.5)
    assert workflow.training_progress({}, 0) == ("epoch 0/0", None)
    assert workflow.training_status({"status": "DONE"}) == "Training done"
    assert workflow.server_status({"name": "BTL", "version": "1", "models": {workflow.MODEL: {
        "model_version": "v2", "model_warning": "trained on generated cases only"}}}) == \
        "BTL 1: model v2 (trained on generated cases only)"


def test_a_submission_records_who_when_and_from_which_model():
    info = workflow.submission_info("dr.who", segmented_at=100.0, model_version="v2", now=160.04)
    assert (info["user"], info["seconds_since_segmentation"], info["model_version"]) == ("dr.who", 60.0, "v2")
    assert workflow.submission_info("a", None, "", now=5.0)["seconds_since_segmentation"] is None
