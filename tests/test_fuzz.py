"""Generated hostile requests against a real server process: every one is answered with a 4xx
(or 503 when busy) naming the problem, never a 500; the server stays up; nothing stored changes."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from _cases import make_studies
from _fuzz import ESCAPED, attempts
from _http import call
from _server import monailabel_server

REQUESTS = 150
AUDIT = "audit.jsonl"  # grows with accepted requests; not stored data


def _stored(root: Path) -> dict[str, str]:
    """Digest of every stored file (studies, labels, records), not logs."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts and p.name != AUDIT}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    make_studies(root, 1, seed=51)
    with monailabel_server(root, tmp_path_factory.mktemp("log") / "server.log") as url:
        yield url, root


def test_hostile_requests_get_a_4xx_and_change_nothing(server):
    url, root = server
    study = next(p.name for p in root.iterdir() if p.name.startswith("SynBraTS"))
    before = _stored(root)
    outcomes: Counter[tuple[str, int]] = Counter()
    for attempt in attempts(seed=7, count=REQUESTS, study=study):
        status, body = call(url, attempt.method, attempt.path, fields=attempt.fields, files=attempt.files,
                            body=attempt.body, content_type=attempt.content_type)
        outcomes[(attempt.what, status)] += 1
        assert 400 <= status < 500 or status == 503, (attempt.what, attempt.path[:120], status, body[:300])
    assert call(url, "GET", "/auth/")[0] == 200  # still up
    assert _stored(root) == before
    assert not list(Path(ESCAPED).parent.glob(Path(ESCAPED).name + "*"))  # no tar member landed outside
    assert sum(outcomes.values()) == REQUESTS and len({what for what, _ in outcomes}) > 15
