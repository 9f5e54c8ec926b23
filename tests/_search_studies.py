"""A real server whose search index holds three generated studies (two patients; the first has a
follow-up), their reference labels submitted as final labels: what the Slicer Lib's and the
panel's search tests work against. Standard library only on the client side (Slicer's Pythons)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _server import monailabel_server
from _server_side import task
from BrainTumorLabelLib.client import ServerClient


@contextmanager
def indexed_server(root: Path, log: Path, seed: int, timeout_s: float = 300) -> Iterator[str]:
    """The server's URL once every study is in its search index (no inference needed)."""
    truths = task("make_search_studies", root=root, seed=seed)  # made on the server's Python
    with monailabel_server(root, log) as url:
        client = ServerClient(url, timeout_s=60)
        for study, truth in truths.items():
            client.submit_label(study, Path(truth), {"annotator": "test"})
        deadline = time.monotonic() + timeout_s
        while (status := client.search_status())["studies"] < len(truths) or status["pending"]:
            assert time.monotonic() < deadline, status
            time.sleep(1)
        yield url
