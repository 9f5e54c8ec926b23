"""No acknowledged write is lost: two server processes on one studies folder take corrections
for the same study at once while inferences write model output for it; afterwards every
submission answered 200 is found by its content, each in its own version."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from _cases import make_studies, t1c_path, write_label_like
from _http import call
from _server import monailabel_server

MODEL = "brats_segresnet"
PER_SERVER = 8


def test_two_servers_and_inferences_lose_no_acknowledged_label(tmp_path):
    studies = tmp_path / "studies"
    ids = make_studies(studies, 2, seed=50)
    target = ids[0]
    shape = sitk.ReadImage(str(t1c_path(studies / target))).GetSize()[::-1]
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

    def segment(url: str, times: int) -> None:
        for _ in range(times):
            status, body = call(url, "POST", f"/infer/{MODEL}?image={target}&output=json")
            assert status == 200, body

    with monailabel_server(studies, tmp_path / "a.log") as first, \
            monailabel_server(studies, tmp_path / "b.log") as second:
        threads = [threading.Thread(target=submit, args=(url, list(range(k, 2 * PER_SERVER, 2))))
                   for k, url in enumerate((first, second))]
        threads.append(threading.Thread(target=segment, args=(first, 2)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
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
    assert len(originals) == 2 and all(v["tag"] == "original" for v in originals)
    assert not list(Path(studies).glob("labels/*/*/.*tmp*"))  # no temporary file left behind
