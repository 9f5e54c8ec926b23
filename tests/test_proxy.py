"""Two servers on one studies folder behind a real reverse proxy (nginx on loopback), with
authentication: eight annotators take studies and submit labels while four inferences run,
for a bounded time. Every acknowledged label is kept, each in its own version; no study is
leased to two annotators at once; both servers answered. (The latency of ``/info/`` under this
load is measured in bench/load_behind_proxy.py, not here.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from lib.server.proxy_sandbox import start_proxy

from _cases import make_studies, truth_path
from _http import call
from _oidc import oidc_provider
from _server import monailabel_process

MODEL = "brats_segresnet"
AUDIENCE = "braintumorlabel"
ANNOTATORS, INFERENCES, DURATION_S = 8, 4, 45.0


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 12, seed=74)
    logs = tmp_path_factory.mktemp("logs")
    with oidc_provider(audience=AUDIENCE) as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": AUDIENCE}
        with monailabel_process(root, logs / "a.log", env=env) as (first, _), \
                monailabel_process(root, logs / "b.log", env=env) as (second, _), \
                start_proxy([first.removeprefix("http://"), second.removeprefix("http://")]) as proxy:
            tokens = {"annotator": provider.token("annotator-client", AUDIENCE),
                      "clinician": provider.token("clinician-client", AUDIENCE)}
            yield {"root": root, "ids": ids, "proxy": proxy, "tokens": tokens,
                   "upstreams": {first.removeprefix("http://"), second.removeprefix("http://")}}


def test_two_servers_behind_a_proxy_keep_every_label_and_lease_each_study_once(site):
    url, tokens = site["proxy"].url, site["tokens"]
    labels = {study: truth_path(site["root"] / study).read_bytes() for study in site["ids"]}
    acknowledged: list[tuple[str, int]] = []
    leases: list[tuple[str, str, float, float]] = []  # study, annotator, from, to
    problems: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DURATION_S

    def annotate(n: int) -> None:
        me = f"annotator-{n}"
        while time.monotonic() < deadline:
            status, body = call(url, "POST", "/activelearning/random", body=json.dumps({"client_id": me}).encode(),
                                content_type="application/json", token=tokens["annotator"])
            if status != 200:
                with lock:
                    problems.append(f"next sample {status}: {body[:200]!r}")
                return
            study = json.loads(body).get("id")
            if not study:
                return  # every study is labelled
            taken = time.monotonic()
            status, body = call(url, "PUT", f"/datastore/label?image={study}&tag=final",
                                files={"label": labels[study]}, token=tokens["annotator"])
            with lock:
                leases.append((study, me, taken, time.monotonic()))
                if status == 200:
                    acknowledged.append((study, json.loads(body)["version"]))
                elif status != 503:  # a full queue is an answer to retry, not a loss
                    problems.append(f"label {status}: {body[:200]!r}")

    def segment(n: int) -> None:
        status, body = call(url, "POST", f"/infer/{MODEL}?image={site['ids'][n]}&output=json",
                            token=tokens["clinician"])
        if status not in (200, 503):
            with lock:
                problems.append(f"infer {status}: {body[:200]!r}")

    threads = [threading.Thread(target=annotate, args=(n,)) for n in range(ANNOTATORS)]
    threads += [threading.Thread(target=segment, args=(n,)) for n in range(INFERENCES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DURATION_S + 600)
    assert not problems, problems
    assert acknowledged, "no label was submitted"
    for study, version in acknowledged:  # every acknowledged label is there, with its content
        stored = site["root"] / "labels" / "final" / study / f"v{version:04d}.nii.gz"
        assert stored.exists(), (study, version)
    versions = {(p.parent.name, int(p.name[1:5])) for p in (site["root"] / "labels" / "final").glob("*/v*.nii.gz")}
    assert versions == set(acknowledged)
    for study in {s for s, *_ in leases}:  # never two annotators on one study at once
        held = sorted((start, end, who) for s, who, start, end in leases if s == study)
        for (_, end, who), (start, _, other) in zip(held, held[1:], strict=False):
            assert who == other or start >= end, (study, held)
    assert set(site["proxy"].upstreams_used()) >= site["upstreams"]  # both servers answered
