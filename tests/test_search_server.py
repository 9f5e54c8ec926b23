"""Case search on a real server over a study folder: a segmented study becomes searchable by
itself (no manual step), a new label version updates its features, a signed report is found by
its words and its meaning, a removed study leaves the index, a patient's studies are found by
the folder's metadata, bad queries are 4xx with the reason, and every search is audited."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import SimpleITK as sitk

from synthbrats import GeneratorConfig

from _cases import FAST, write_generated
from _server import monailabel_server

MODEL = "brats_segresnet"
SEED = 71


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-studies")
    ids = [write_generated(SEED, i, FAST, root).name for i in range(3)]
    follow_up = write_generated(SEED, 0, GeneratorConfig(spacing=2.0, style="brats", kind="glioblastoma",
                                                         tumor_scale=0.7), root).name
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log") as url:
        for study in [*ids, follow_up]:
            answer = requests.post(f"{url}/infer/{MODEL}", params={"image": study, "output": "json"}, timeout=300)
            assert answer.status_code == 200, answer.text
        yield {"url": url, "root": root, "ids": ids, "follow_up": follow_up}


def wait_indexed(url: str, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = requests.get(f"{url}/btl/search/status", timeout=30).json()
        if status["pending"] == 0:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(1.0)


def similar(url: str, study: str, **params) -> requests.Response:
    return requests.get(f"{url}/btl/search/similar", params={"study": study, **params}, timeout=60)


def test_segmented_studies_are_searchable_by_image_and_tumor_without_a_manual_step(server):
    url, (first, *_), follow_up = server["url"], server["ids"], server["follow_up"]
    status = wait_indexed(url)
    assert status["studies"] == 4 and status["image_vectors"] == 4 and not status["problems"], status
    for by in ("image", "tumor", "both"):
        answer = similar(url, first, k=3, by=by)
        assert answer.status_code == 200, answer.text
        hits = answer.json()["hits"]
        assert len(hits) == 3 and first not in [h["study"] for h in hits]
        assert all(0 < h["score"] <= 1 for h in hits) and hits[0]["score"] >= hits[-1]["score"]
    hits = similar(url, first, k=3).json()["hits"]
    flagged = {h["study"]: h["same_patient"] for h in hits}
    assert flagged[follow_up] is True and sum(flagged.values()) == 1
    baseline = next(h for h in similar(url, follow_up, k=3).json()["hits"] if h["study"] == first)
    assert baseline["patient"]["id"] == f"SYN-{SEED:05d}-000" and baseline["date"] == "20260101"
    assert baseline["measurements"]["volumes_ml"]["WT"] > 0 and baseline["label"] == {"tag": "original",
                                                                                        "version": 1}
    picture = requests.get(url + baseline["thumbnail"], timeout=60)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


def test_measurement_filters_narrow_a_similarity_search(server):
    url, first = server["url"], server["ids"][0]
    wait_indexed(url)
    volumes = {h["study"]: h["measurements"]["volumes_ml"]["WT"] for h in similar(url, first, k=3).json()["hits"]}
    threshold = sorted(volumes.values())[1]
    narrowed = requests.get(f"{url}/btl/search/similar?study={first}&k=3&wt_ml>={threshold}", timeout=60).json()
    assert {h["study"] for h in narrowed["hits"]} == {s for s, v in volumes.items() if v >= threshold}
    sided = requests.get(f"{url}/btl/search/similar?study={first}&k=3&hemisphere=left&crosses_midline=false",
                         timeout=60).json()["hits"]
    assert all(h["measurements"]["hemisphere"] == "left" and h["measurements"]["crosses_midline"] is False
               for h in sided)


def test_a_new_label_version_updates_the_features(server, tmp_path):
    url, study = server["url"], server["ids"][1]
    wait_indexed(url)
    before = next(h for h in similar(url, server["ids"][0], k=3).json()["hits"] if h["study"] == study)
    model_label = requests.get(f"{url}/btl/studies/{study}/labels/original/1", timeout=60)
    (tmp_path / "model.nii.gz").write_bytes(model_label.content)
    fixed = tmp_path / "edema-only.nii.gz"  # the correction: only the model's edema (2) is tumor
    sitk.WriteImage(sitk.BinaryThreshold(sitk.ReadImage(str(tmp_path / "model.nii.gz")), 2, 2, 2, 0), str(fixed))
    saved = requests.put(f"{url}/datastore/label", params={"image": study, "tag": "final"},
                         files={"label": fixed.read_bytes()}, timeout=60)
    assert saved.status_code == 200, saved.text
    time.sleep(0.5)
    wait_indexed(url)
    after = next(h for h in similar(url, server["ids"][0], k=3).json()["hits"] if h["study"] == study)
    assert after["label"] == {"tag": "final", "version": 1}
    assert after["measurements"]["volumes_ml"]["ET"] == 0 and before["measurements"]["volumes_ml"]["ET"] > 0


def _sign(url: str, study: str, impression: str) -> None:
    draft = requests.post(f"{url}/btl/studies/{study}/report", json={}, timeout=300)
    assert draft.status_code == 200, draft.text
    for finding in draft.json()["findings"]:
        assert requests.put(f"{url}/btl/studies/{study}/report/findings/{finding['key']}",
                            json={"state": "approved"}, timeout=60).status_code == 200
    signed = requests.post(f"{url}/btl/studies/{study}/report/sign",
                           json={"impression": impression, "recommendations": "Follow-up MRI in 8 weeks."},
                           timeout=300)
    assert signed.status_code == 200, signed.text


def test_a_signed_report_is_found_by_its_words_and_its_meaning(server):
    url, study = server["url"], server["ids"][2]
    _sign(url, study, "Large necrotic glioblastoma. Surgical resection advised.")
    time.sleep(0.5)
    wait_indexed(url)
    keyword = requests.get(f"{url}/btl/search", params={"q": "glioblastomas resection", "mode": "keyword"},
                           timeout=120).json()["hits"]
    assert [h["study"] for h in keyword] == [study]  # porter stemming: glioblastomas -> glioblastoma
    assert "<mark>" in keyword[0]["match"]["highlighted"] and keyword[0]["impression"].startswith("Large necrotic")
    semantic = requests.get(f"{url}/btl/search", params={"q": "operation recommended to remove the tumour",
                                                          "mode": "semantic", "k": 1}, timeout=300).json()["hits"]
    assert [h["study"] for h in semantic] == [study] and semantic[0]["match"]["by"] == "semantic"
    assert semantic[0]["match"]["sentence"] == "Surgical resection advised."
    unsigned = requests.get(f"{url}/btl/search", params={"q": "glioblastoma", "mode": "keyword"},
                            timeout=60).json()["hits"]
    assert [h["study"] for h in unsigned] == [study]  # drafts are not indexed, signed reports are


def test_a_patients_studies_are_found_by_the_folders_metadata(server):
    url, first, follow_up = server["url"], server["ids"][0], server["follow_up"]
    found = requests.get(f"{url}/btl/patients", params={"q": f"synthetic^{SEED:05d}-000"}, timeout=60).json()
    assert len(found["patients"]) == 1
    patient = found["patients"][0]
    assert patient["patient"]["id"] == f"SYN-{SEED:05d}-000"
    assert [s["study"] for s in patient["studies"]] == [first, follow_up]  # by date
    by_accession = requests.get(f"{url}/btl/patients", params={"q": f"A{SEED:05d}000F"}, timeout=60).json()
    assert [s["study"] for p in by_accession["patients"] for s in p["studies"]] == [follow_up]


@pytest.mark.parametrize(("path", "status", "reason"), [
    ("/btl/search/similar?study=no-such-study", 404, "unknown image id"),
    ("/btl/search/similar?study={first}&k=0", 422, "k must be between 1 and 100"),
    ("/btl/search/similar?study={first}&k=101", 422, "k must be between 1 and 100"),
    ("/btl/search/similar?study={first}&by=colour", 422, "by must be one of image, tumor, both"),
    ("/btl/search/similar?study={first}&wt_ml>=lots", 422, "wt_ml takes a number"),
    ("/btl/search/similar?study={first}&volume>=5", 422, "unknown filter field 'volume'"),
    ("/btl/search/similar?study={first}&hemisphere=up", 422, "hemisphere is one of left, right"),
    ("/btl/search/similar?study={first}&crosses_midline>1", 422, "takes = or !="),
    ("/btl/search?q=" + "a" * 10_000, 422, "at most 500"),
    ("/btl/search?q=", 422, "no words"),
    ("/btl/search?q=tumor&mode=psychic", 422, "mode must be one of"),
    ("/btl/patients?q=", 422, "patient id, a name or an accession number"),
])
def test_bad_queries_are_4xx_with_the_reason(server, path, status, reason):
    answer = requests.get(server["url"] + path.format(first=server["ids"][0]), timeout=60)
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]


def test_every_search_is_in_the_audit_trail_with_what_it_returned(server):
    url, first = server["url"], server["ids"][0]
    wait_indexed(url)
    hits = similar(url, first, k=2, by="tumor").json()["hits"]
    requests.get(f"{url}/btl/patients", params={"q": "SYN-"}, timeout=60)
    events = requests.get(f"{url}/btl/audit", params={"action": "search."}, timeout=60).json()
    last_similar = [e for e in events if e["action"] == "search.similar"][-1]
    assert last_similar["study"] == first and last_similar["detail"]["hits"] == [h["study"] for h in hits]
    assert last_similar["detail"]["by"] == "tumor" and last_similar["user"] == "local"
    assert any(e["action"] == "search.patients" and e["detail"]["q"] == "SYN-" for e in events)


def test_a_removed_study_leaves_the_index(server):
    url, root, (first, _, third) = server["url"], server["root"], server["ids"]
    wait_indexed(url)
    assert requests.delete(f"{url}/datastore/", params={"id": third}, timeout=60).status_code == 200
    time.sleep(0.5)
    status = wait_indexed(url)
    assert status["studies"] == 3
    assert third not in [h["study"] for h in similar(url, first, k=10).json()["hits"]]
    assert similar(url, third).status_code == 404
    assert not (Path(root) / third).exists()
