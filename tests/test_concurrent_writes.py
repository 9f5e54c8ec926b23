"""No acknowledged write is lost: two server processes on one studies folder take corrections
for the same study at once while a batch inference writes model output; afterwards every
submission answered 200 is found by its content, each in its own version."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from _cases import make_studies, t1c_path, write_label_like
from _http import call
from _server import monailabel_server

MODEL = "brats_segresnet"
PER_SERVER = 8


def test_two_servers_and_a_batch_lose_no_acknowledged_label(tmp_path):
    studies = tmp_path / "studies"
    ids = make_studies(studies, 2, seed=50)
    target = ids[0]
    shape = sitk.GetArrayViewFromImage(sitk.ReadImage(str(t1c_path(studies / target)))).shape
    labels = []
    for i in range(2 * PER_SERVER):  # each marks its own slice, so it can be found again
        values = np.zeros(shape, np.uint8)
        values[i] = 2
        path = write_label_like(t1c_path(studies / target), tmp_path / f"l{i}.nii.gz", values=values)
        labels.append(path.read_bytes())
    acknowledged: list[int] = []
    lock = threading.Lock()

    def submit(url: str, which: list[int]) -> None:
        for i in which:
            status, _ = call(url, "PUT", f"/datastore/label?image={target}&tag=final", files={"label": labels[i]})
            if status == 200:
                with lock:
                    acknowledged.append(i)

    with monailabel_server(studies, tmp_path / "a.log") as first, \
            monailabel_server(studies, tmp_path / "b.log") as second:
        status, body = call(first, "POST", f"/batch/infer/{MODEL}?images=all", body=json.dumps(
            {"device": "cpu", "multi_gpu": False, "save_label": True, "logging": "WARNING"}).encode(),
            content_type="application/json")
        assert status == 200, body
        threads = [threading.Thread(target=submit, args=(url, list(range(k, 2 * PER_SERVER, 2))))
                   for k, url in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 600
        while json.loads(call(first, "GET", "/batch/infer")[1]).get("status") in ("SUBMITTED", "RUNNING"):
            assert time.monotonic() < deadline, "the batch inference did not finish"
            time.sleep(1)
        versions = json.loads(call(second, "GET", f"/btl/studies/{target}/labels/final")[1])
        originals = json.loads(call(second, "GET", f"/btl/studies/{target}/labels/original")[1])
        found = []
        for version in versions:
            status, data = call(second, "GET", f"/btl/studies/{target}/labels/final/{version['version']}")
            path = tmp_path / "found.nii.gz"
            path.write_bytes(data)
            marked = np.flatnonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).any(axis=(1, 2)))
            found.append(int(marked[0]))
    assert sorted(acknowledged) == list(range(2 * PER_SERVER))
    assert sorted(found) == sorted(acknowledged)  # every acknowledged label, once each
    assert len(originals) >= 1 and all(v["tag"] == "original" for v in originals)
    assert not list(Path(studies).glob("labels/*/*/.*tmp*"))  # no temporary file left behind
