"""Is the server still responsive while it works? ``/info/`` latency while 4 inferences and a
study upload run, for this server (``btl-server``: inference and uploads in worker threads,
a bounded inference queue) next to the same app on MONAI Label's own server (its handlers run
inference and uploads on the event loop), in one run.

    .venv/bin/python bench/latency_under_load.py --out bench/results/latency_under_load.json

Studies: 4 generated 2 mm cases; the upload: a real 1 mm case from ../shared/real-cases as one
4-channel NIfTI. ``/info/`` is asked every 50 ms from before the load starts until it ends.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

from lib.atomic import write_json  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))

from lib.net import free_loopback_port  # noqa: E402

from _cases import make_studies  # noqa: E402
from _http import call  # noqa: E402

MODEL = "brats_segresnet"
REAL = REPO.parent / "shared" / "real-cases" / "BraTS-GLI-00001-000"


def start(kind: str, studies: Path, log: Path) -> tuple[str, subprocess.Popen]:
    port = free_loopback_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "2",
           "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    if kind == "ours":
        command = [str(bin_dir / "btl-server"), "--studies", str(studies), "--port", str(port)]
    else:  # the same app on MONAI Label's own server
        env["BTL_ALLOW_UNGUARDED_SERVER"] = "1"
        command = [str(bin_dir / "monailabel"), "start_server", "--app", str(REPO / "monailabel_app"),
                   "--studies", str(studies), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while not _up(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    return url, process


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/info/", timeout=5).read()
        return True
    except OSError:
        return False


def four_channel_upload(folder: Path) -> bytes:
    channels = [sitk.ReadImage(str(next(REAL.glob(f"*-{s}.nii.gz"))), sitk.sitkFloat32)
                for s in ("t1n", "t1c", "t2w", "t2f")]
    path = folder / "upload.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(channels), str(path))
    return path.read_bytes()


def measure(kind: str, studies: Path, upload: bytes, work: Path) -> dict:
    url, process = start(kind, studies, work / f"{kind}.log")
    try:
        ids = sorted(p.name for p in studies.iterdir() if p.name.startswith("SynBraTS"))
        call(url, "POST", f"/infer/{MODEL}?image={ids[0]}&output=json")  # warm up: the model is loaded
        latencies: list[float] = []
        loaded = threading.Event()
        statuses: list[int] = []

        def poll() -> None:
            while not loaded.is_set():
                started = time.perf_counter()
                call(url, "GET", "/info/")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)

        def infer(image: str) -> None:
            statuses.append(call(url, "POST", f"/infer/{MODEL}?image={image}&output=json")[0])

        def add() -> None:
            statuses.append(call(url, "PUT", f"/datastore/image?image=upload-{kind}", files={"file": upload})[0])

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(1.0)
        idle = len(latencies)
        workers = [threading.Thread(target=infer, args=(ids[i % len(ids)],)) for i in range(4)]
        workers.append(threading.Thread(target=add))
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        busy_s = time.perf_counter() - started
        loaded.set()
        poller.join()
        under_load = np.asarray(latencies[idle:]) * 1000
        return {"info_ms_p50": round(float(np.percentile(under_load, 50)), 1),
                "info_ms_p95": round(float(np.percentile(under_load, 95)), 1),
                "info_ms_max": round(float(under_load.max()), 1), "info_requests": int(under_load.size),
                "idle_info_ms_p50": round(float(np.median(np.asarray(latencies[:idle]) * 1000)), 1),
                "load_s": round(busy_s, 1), "statuses": statuses}
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        upload = four_channel_upload(work)
        results = {}
        for kind in ("ours", "monailabel"):
            studies = work / kind
            make_studies(studies, 4, seed=60)
            results[kind] = measure(kind, studies, upload, work)
            print(kind, results[kind], flush=True)
    ratio = results["monailabel"]["info_ms_p95"] / max(results["ours"]["info_ms_p95"], 1e-3)
    report = {"provenance": provenance(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "results": results,
              "p95_ratio_monailabel_over_ours": round(ratio, 1)}
    print(f"/info/ p95 under load: ours {results['ours']['info_ms_p95']} ms, MONAI Label's server "
          f"{results['monailabel']['info_ms_p95']} ms: x{ratio:.1f}")
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
