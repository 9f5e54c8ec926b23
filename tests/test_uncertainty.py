"""The uncertainty strategy: a score that follows the model's doubt, not the tumor's size; and
against a real server, scores computed in the background for the served model while
next_sample falls back to random, then the least certain free study handed out."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from lib.activelearning.uncertainty import binary_entropy, score_regions

from _cases import make_studies
from _server import monailabel_server


def _regions(shape, radius, inside_p):
    index = np.moveaxis(np.indices(shape), 0, -1)
    ball = np.linalg.norm(index - np.asarray(shape) / 2, axis=-1) <= radius
    regions = np.full((3, *shape), 0.01, np.float32)
    regions[:, ball] = inside_p
    return regions


def test_a_large_tumor_is_not_more_uncertain_by_its_size():
    small, large = _regions((48, 48, 48), 5, 0.97), _regions((48, 48, 48), 15, 0.97)
    doubtful = _regions((48, 48, 48), 5, 0.6)
    (u_small, ml_small), (u_large, ml_large) = score_regions(small, 2.0), score_regions(large, 2.0)
    assert ml_large > 20 * ml_small
    assert u_large < 1.5 * u_small  # a mean over the tumor and its margin, not a sum
    assert score_regions(doubtful, 2.0)[0] > 3 * u_small
    assert score_regions(np.zeros((3, 8, 8, 8), np.float32), 2.0) == (0.0, 0.0)
    assert binary_entropy(np.array([0.5]))[0] == pytest.approx(1.0)


def test_next_sample_by_uncertainty_on_a_real_server(tmp_path_factory, tmp_path):
    root = tmp_path_factory.mktemp("studies")
    ids = make_studies(root, 3, seed=97)
    with monailabel_server(root, tmp_path / "server.log") as url:
        assert {"uncertainty", "foreground"} <= set(requests.get(f"{url}/info/", timeout=30).json()["strategies"])
        first = requests.post(f"{url}/activelearning/uncertainty", json={"client_id": "a"}, timeout=60)
        assert first.status_code == 200 and first.json()["id"] in ids  # random while nothing is scored
        assert requests.get(f"{url}/btl/uncertainty", timeout=30).json()["scoring"] is True
        # scoring runs beside the request handlers: the server answers and segments meanwhile
        assert requests.get(f"{url}/info/", timeout=10).status_code == 200
        inferred = requests.post(f"{url}/infer/brats_segresnet", params={"image": ids[0], "output": "json"},
                                 timeout=120)
        assert inferred.status_code == 200, inferred.text
        deadline, status = time.monotonic() + 600, {}
        while time.monotonic() < deadline:
            status = requests.get(f"{url}/btl/uncertainty", timeout=30).json()
            if len(status["scores"]) == len(ids) and not status["scoring"]:
                break
            time.sleep(2)
        scores = {study: s["uncertainty"] for study, s in status["scores"].items()}
        assert set(scores) == set(ids) and all(0.0 <= u <= 1.0 for u in scores.values())
        free = [s for s in ids if s != first.json()["id"]]
        chosen = requests.post(f"{url}/activelearning/uncertainty", json={"client_id": "b"}, timeout=60).json()["id"]
        assert chosen == max(free, key=lambda s: scores[s])
        weighted = requests.post(f"{url}/activelearning/foreground", json={"client_id": "c"}, timeout=60)
        assert weighted.status_code == 200 and weighted.json()["id"] not in (first.json()["id"], chosen)
