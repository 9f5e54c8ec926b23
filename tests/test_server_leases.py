"""Two annotators never get the same study: ``next_sample`` leases its pick to the client that
asked, until that client saves the study's final label, asks again, or the lease runs out.
Against a real server process; the lease file is checked for surviving the bookkeeping."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from lib.activelearning.leases import LeaseBook

from _cases import make_studies, t1c_path, write_label_like
from _server import monailabel_server

LEASE_S = 6.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 3, seed=71)
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log", conf={"lease_s": str(LEASE_S)}) as url:
        yield url, root, ids


def _next(url: str, client_id: str, strategy: str = "random") -> str | None:
    answer = requests.post(f"{url}/activelearning/{strategy}", json={"client_id": client_id}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json().get("id")


def test_two_annotators_asking_at_once_get_different_studies(server):
    url, _, ids = server
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda client: _next(url, client, "first"), ["annotator-a", "annotator-b"])
        assert a in ids and b in ids and a != b


def test_asking_again_gives_back_the_old_study_and_the_end_of_the_pool_is_none(server):
    url, _, ids = server
    time.sleep(LEASE_S)  # the earlier test's leases run out
    held = {client: _next(url, client) for client in ("a", "b", "c")}
    assert sorted(held.values()) == sorted(ids)  # three clients, three studies
    assert _next(url, "d") is None  # all leased
    assert _next(url, "a") == held["a"]  # a skips its study: it is the only free one


def test_saving_the_final_label_ends_the_lease_and_a_lease_runs_out(server, tmp_path):
    url, root, ids = server
    time.sleep(LEASE_S)  # the earlier tests' leases run out
    first = _next(url, "annotator-a", "first")
    assert _next(url, "annotator-b", "first") != first
    label = write_label_like(t1c_path(root / first), tmp_path / "final.nii.gz", fill=2)
    with open(label, "rb") as f:
        saved = requests.put(f"{url}/datastore/label", params={"image": first, "tag": "final"},
                             files={"label": ("final.nii.gz", f)}, timeout=60)
    assert saved.status_code == 200, saved.text
    leases = LeaseBook(root / ".braintumorlabel" / "leases.json").current()
    assert first not in {lease.image_id for lease in leases}  # ended on submit
    assert {lease.client_id for lease in leases} == {"annotator-b"}
    time.sleep(LEASE_S)
    assert LeaseBook(root / ".braintumorlabel" / "leases.json").current() == []  # ran out


def test_lease_book_rules_with_a_clock(tmp_path: Path):
    now = [1000.0]
    book = LeaseBook(tmp_path / "leases.json", duration_s=60, clock=lambda: now[0])
    first = book.take("a", ["s1", "s2"], min)
    assert first is not None and first.image_id == "s1" and first.expires_at == 1060.0
    assert book.take("b", ["s1", "s2"], min).image_id == "s2"
    assert book.take("c", ["s1", "s2"], min) is None
    now[0] = 1061.0
    assert book.take("c", ["s1", "s2"], min).image_id == "s1"  # a's lease ran out
    assert LeaseBook(tmp_path / "leases.json", clock=lambda: now[0]).held_by_others("c") == set()
    fresh = tmp_path / "fresh"
    assert LeaseBook(fresh / "leases.json").held_by_others(None) == set() and list(fresh.iterdir()) == []
    with pytest.raises(ValueError, match="more than 0"):
        LeaseBook(tmp_path / "x.json", duration_s=0)
