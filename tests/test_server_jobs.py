"""Cohorts on a real server (``/btl/jobs``), with jobs in the server's own process (no broker):
per-study state with the reason of a failure, labels stored once per job, a second cohort of
the same studies all cached, cancel, and bad requests answered 4xx."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from _cases import make_studies
from _http import call, detail
from _server import monailabel_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 3, seed=75)
    next((root / ids[2]).glob("*-t2f.nii.gz")).unlink()  # a study that cannot be segmented
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url, root, ids


def _start(url: str, studies: list[str] | None) -> dict:
    status, body = call(url, "POST", "/btl/jobs", body=json.dumps({"studies": studies}).encode(),
                        content_type="application/json")
    assert status == 200, body
    return json.loads(body)


def _finished(url: str, job: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = json.loads(call(url, "GET", f"/btl/jobs/{job}")[1])
        if answer["state"] != "running":
            return answer
        time.sleep(1)
    raise AssertionError(f"cohort {job} did not finish in {timeout_s} s")


def test_a_cohort_segments_each_study_once_and_names_why_one_failed(server):
    url, root, ids = server
    job = _start(url, ids)
    assert job["studies"] == 3 and job["state"] == "running"
    done = _finished(url, job["id"])
    rows = {r["study"]: r for r in done["rows"]}
    assert [rows[s]["state"] for s in ids] == ["done", "done", "failed"]
    assert "t2f" in rows[ids[2]]["error"] and rows[ids[0]]["worker"] == "server"
    assert rows[ids[0]]["volumes_ml"]["WT"] > 0 and rows[ids[0]]["measurements"]["hemisphere"] in ("left", "right")
    for study in ids[:2]:
        versions = json.loads(call(url, "GET", f"/btl/studies/{study}/labels/original")[1])
        assert [v["job_id"] for v in versions] == [rows[study]["job_id"]]
        assert versions[0]["model_version"] == done["model_version"]
    listed = json.loads(call(url, "GET", "/btl/jobs")[1])
    assert [c["id"] for c in listed] == [job["id"]] and listed[0]["counts"] == {"done": 2, "failed": 1}
    audit = json.loads(call(url, "GET", "/btl/audit?action=jobs")[1])
    assert [e["action"] for e in audit] == ["jobs.start"]
    assert Path(root, ".braintumorlabel", "jobs", f"{job['id']}.json").exists()


def test_the_same_studies_again_are_cached_and_store_nothing(server):
    url, _, ids = server
    again = _finished(url, _start(url, ids[:2])["id"])
    assert {r["state"] for r in again["rows"]} == {"cached"}
    for study in ids[:2]:
        assert len(json.loads(call(url, "GET", f"/btl/studies/{study}/labels/original")[1])) == 1


def test_a_finished_cohort_cannot_be_cancelled_and_bad_requests_are_4xx(server):
    url, _, ids = server
    finished = json.loads(call(url, "GET", "/btl/jobs")[1])[0]["id"]
    status, body = call(url, "DELETE", f"/btl/jobs/{finished}")
    assert status == 409 and "nothing to cancel" in detail((status, body))
    for path in ("/btl/jobs/nosuchjob", "/btl/jobs/..%2F..%2Fetc"):
        assert call(url, "GET", path)[0] == 404
    for body, expected in ((b'{"studies": ["no-such-study"]}', 404), (b'{"studies": []}', 422),
                           (b'{"studies": "all"}', 422), (b"[1", 422)):
        status, answer = call(url, "POST", "/btl/jobs", body=body, content_type="application/json")
        assert status == expected, (body, status, answer)
