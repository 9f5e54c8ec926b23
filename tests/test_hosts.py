"""Several hosts, for real: the broker (RabbitMQ), the PACS (Orthanc), the server and two job
workers each on a host of its own (network namespaces, tests/_hosts.py), and the faults a
department's network has. The server's inferences run on the workers; each fault scenario is
a cohort of two studies (one for each worker) started on the server (``POST /btl/jobs``), and each ends with every
study's label in the PACS exactly once, with the model version that made it.

| fault | what survives it |
|---|---|
| a worker killed (SIGKILL) mid-study | its job is redelivered to the other worker and completes once |
| a worker host's link cut mid-cohort | its job finishes on the other worker |
| the broker restarted with jobs queued | no job is lost |
| the PACS frozen for 30 s | jobs wait and complete; labels reach the PACS |
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lib.jobs.sandbox import RabbitSandbox, start_rabbitmq
from synthbrats.dicom_export import StudyPlan, export_case

from _cases import FAST, write_generated
from _hosts import Host, host_network, wait_for

BIN = Path(sys.executable).parent
PASSWORD = "pacs-secret-for-the-test"
SCENARIOS = ("worker killed", "link cut", "broker restarted", "pacs frozen")
PER_COHORT = 2  # one study for each worker


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("site")
    uids = []
    for i in range(PER_COHORT * len(SCENARIOS) + 1):  # and one for an inference
        case = write_generated(73, i, FAST, root / "cases")
        uids.append(export_case(case, root / "dicom", np.random.default_rng(i),
                                StudyPlan("siemens", "Gadobutrol", (), None))["study_uid"])
    with host_network("broker", "pacs", "server", "w1", "w2", subnet=os.getpid() % 200 + 20) as hosts:
        broker = start_rabbitmq(address=hosts["broker"].address, port=5672, netns=hosts["broker"].namespace)
        try:
            pacs_log = root / "pacs.log"
            hosts["pacs"].popen([sys.executable, "-m", "lib.pacs.sandbox", "--port", "8042", "--studies",
                                 str(root / "dicom"), "--allow-remote"], pacs_log, {"BTL_ORTHANC_PASSWORD": PASSWORD})
            started = wait_for(lambda: re.search(r"Orthanc: .* process (\d+)", pacs_log.read_text()), 300,
                               "the PACS to start")
            pacs_url = f"http://{hosts['pacs'].address}:8042/dicom-web"
            common = {"BTL_PACS_USERNAME": "btl", "BTL_PACS_PASSWORD": PASSWORD, "BTL_BROKER_URL": broker.url,
                      "OMP_NUM_THREADS": "1", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
            hosts["server"].popen([str(BIN / "btl-server"), "--studies", pacs_url, "--port", "8000", "--conf",
                                   "cache_dir", str(root / "server-cache"), "--conf", "model_dir",
                                   str(root / "model")], root / "server.log", common)
            workers = {name: _start_worker(hosts[name], root, common, wait=False) for name in ("w1", "w2")}
            for name in workers:  # started together, each loading the model
                _wait_ready(root, name, 1)
            site = {"root": root, "hosts": hosts, "broker": broker, "uids": uids, "pacs_pid": int(started[1]),
                    "common": common, "workers": workers}
            wait_for(lambda: _api(site, "GET", "/auth/", check=False) is not None, 300, "the server to start")
            yield site
        finally:
            for host in hosts.values():
                host.stop()
            broker.close()


def _readies(root: Path, name: str) -> int:
    log = root / f"{name}.log"
    return log.read_text(errors="replace").count("ready.") if log.exists() else 0


def _start_worker(host: Host, root: Path, env: dict[str, str], wait: bool = True) -> int:
    """Start a worker on ``host`` (its log appended to ``<root>/<name>.log``), by default waiting
    until it says it is ready."""
    before = _readies(root, host.name)
    process = host.popen([str(BIN / "btl-worker"), "--name", host.name, "--conf", "cache_dir",
                          str(root / f"{host.name}-cache")], root / f"{host.name}.log", env)
    if wait:
        _wait_ready(root, host.name, before + 1)
    return process.pid


def _wait_ready(root: Path, name: str, count: int) -> None:
    """Until the worker's log says "ready." ``count`` times (its starts so far)."""
    wait_for(lambda: _readies(root, name) >= count, 300, f"worker {name} to start")


def _api(site: dict, method: str, path: str, body: dict | None = None, check: bool = True):  # type: ignore[no-untyped-def]
    """A request to the server from its own host (authentication is off: loopback only)."""
    code = f"""
import json, urllib.request, urllib.error
data = {json.dumps(body) if body is not None else None!r}
request = urllib.request.Request("http://127.0.0.1:8000{path}", method={method!r},
                                 data=data.encode() if data else None,
                                 headers={{"Content-Type": "application/json"}} if data else {{}})
try:
    with urllib.request.urlopen(request, timeout=60) as answer:
        print(json.dumps([answer.status, json.load(answer)]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
except OSError as error:
    print(json.dumps([0, str(error)]))
"""
    status, answer = json.loads(site["hosts"]["server"].python(code, timeout_s=120))
    if status == 0:
        return None
    if check:
        assert status == 200, (method, path, status, answer)
    return answer


def _cohort(site: dict, scenario: str) -> str:
    index = SCENARIOS.index(scenario)
    studies = site["uids"][PER_COHORT * index: PER_COHORT * (index + 1)]
    return _api(site, "POST", "/btl/jobs", {"studies": studies})["id"]


def _finished(site: dict, job: str, timeout_s: float = 600) -> dict:
    return wait_for(lambda: (d := _api(site, "GET", f"/btl/jobs/{job}"))["state"] != "running" and d, timeout_s,
                    f"cohort {job} to finish", interval_s=2)


def _running(site: dict, job: str) -> tuple[dict, str, str]:
    """A study of ``job`` running on a worker (whichever took one first): its row, that worker
    and the other one."""
    row = wait_for(lambda: next((r for r in _api(site, "GET", f"/btl/jobs/{job}")["rows"]
                                 if r["state"] == "running" and r["worker"] in site["workers"]), None), 300,
                   f"a study of {job} running on a worker", interval_s=0.5)
    return row, row["worker"], next(name for name in site["workers"] if name != row["worker"])


def _check_labels_once(site: dict, detail: dict) -> None:
    """Every study of the cohort done, its label stored once (one version, one SEG in the PACS)."""
    assert {r["state"] for r in detail["rows"]} == {"done"}, detail["rows"]
    for row in detail["rows"]:
        versions = _api(site, "GET", f"/btl/studies/{row['study']}/labels/original")
        mine = [v for v in versions if v.get("job_id") == row["job_id"]]
        assert len(mine) == 1 and len(versions) == 1, versions
        assert mine[0]["model_version"] == row["model_version"] == detail["model_version"]
    counts = site["hosts"]["server"].python(f"""
import json
from lib.pacs.client import PacsClient, PacsConfig
client = PacsClient(PacsConfig("http://{site['hosts']['pacs'].address}:8042/dicom-web", "btl", "{PASSWORD}"))
def segs(uid):
    return sum(s.get("00080060", {{}}).get("Value") == ["SEG"] for s in client.series(uid, fields=("00080060",)))
print(json.dumps({{uid: segs(uid) for uid in {json.dumps([r["study"] for r in detail["rows"]])}}}))
""")
    assert set(json.loads(counts).values()) == {1}, counts


def test_an_inference_on_the_server_runs_on_a_worker(site):
    study = site["uids"][-1]
    answer = _api(site, "POST", f"/infer/brats_segresnet?image={study}&output=json")
    assert answer["device"] == "worker" and answer["worker"] in ("w1", "w2") and answer["volumes_ml"]["WT"] > 0
    versions = _api(site, "GET", f"/btl/studies/{study}/labels/original")
    assert len(versions) == 1 and versions[0]["model_version"] == answer["model_version"]


def test_a_worker_killed_mid_study_gives_its_job_to_the_other(site):
    job = _cohort(site, "worker killed")
    running, killed, other = _running(site, job)
    os.killpg(site["workers"][killed], signal.SIGKILL)
    detail = _finished(site, job)
    _check_labels_once(site, detail)
    assert next(r for r in detail["rows"] if r["study"] == running["study"])["worker"] == other
    site["workers"][killed] = _start_worker(site["hosts"][killed], site["root"], site["common"])


def test_a_worker_host_that_loses_its_link_has_its_job_finished_elsewhere(site):
    job = _cohort(site, "link cut")
    running, cut, other = _running(site, job)
    site["hosts"][cut].link_down()
    try:
        detail = _finished(site, job)
    finally:
        site["hosts"][cut].link_up()
    _check_labels_once(site, detail)
    assert next(r for r in detail["rows"] if r["study"] == running["study"])["worker"] == other


def test_a_broker_restart_loses_no_queued_job(site):
    for pid in site["workers"].values():
        os.killpg(pid, signal.SIGSTOP)  # nothing runs: the cohort waits in the queue
    try:
        job = _cohort(site, "broker restarted")
        wait_for(lambda: all(r["job_id"] for r in _api(site, "GET", f"/btl/jobs/{job}")["rows"]), 120,
                 "the cohort's jobs to be queued")
        time.sleep(2)
        broker: RabbitSandbox = site["broker"]
        broker.restart()
    finally:
        for pid in site["workers"].values():
            os.killpg(pid, signal.SIGCONT)
    _check_labels_once(site, _finished(site, job))


def test_a_pacs_frozen_for_30_s_delays_the_cohort_and_loses_nothing(site):
    job = _cohort(site, "pacs frozen")
    os.kill(site["pacs_pid"], signal.SIGSTOP)
    try:
        time.sleep(30)
    finally:
        os.kill(site["pacs_pid"], signal.SIGCONT)
    detail = _finished(site, job)
    wait_for(lambda: _api(site, "GET", "/datastore/?output=stats").get("outbox") == 0, 120,
             "the labels to reach the PACS")
    _check_labels_once(site, detail)
