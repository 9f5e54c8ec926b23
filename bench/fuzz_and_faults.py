"""The long fuzz-and-fault run (the suite's test_fuzz.py is its short form).

1. Fuzz: ``--requests`` generated hostile requests (tests/_fuzz.py) against a real server:
   counts by status; a 500 or a changed stored file is a failure.
2. Faults: ``--kills`` times, a server takes a stream of label submissions from two clients and
   is killed with SIGKILL at a random moment (mid-save included); it is restarted on the same
   folder and every submission that had been answered 200 must be there, by its content.
3. Training killed: a training run is started and the server and its trainer are killed with
   SIGKILL mid-run; after a restart the served model must be unchanged and loadable, and a new
   training must be accepted.

    .venv/bin/python bench/fuzz_and_faults.py --requests 2000 --kills 10 --out bench/results/fuzz_and_faults.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))

from _cases import make_studies, t1c_path, truth_path  # noqa: E402
from _fuzz import attempts  # noqa: E402
from _http import call  # noqa: E402
from _server import monailabel_process  # noqa: E402

MODEL = "brats_segresnet"
#: The audit trail records the requests that were accepted (a generated training request can be
#: valid): it is expected to grow, so it is not part of the stored data compared.
AUDIT = "audit.jsonl"


def stored(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts and p.name != AUDIT}


def settled(url: str, timeout_s: float = 300.0) -> None:
    """Until the server's background work on its studies is done (the search index up to date)."""
    deadline = time.monotonic() + timeout_s
    while json.loads(call(url, "GET", "/btl/search/status")[1]).get("pending"):
        if time.monotonic() > deadline:
            raise RuntimeError("the search index did not settle")
        time.sleep(1)
    time.sleep(2)


def fuzz(work: Path, requests: int, seed: int) -> dict:
    root = work / "fuzz"
    make_studies(root, 1, seed=seed)
    study = next(p.name for p in root.iterdir() if p.name.startswith("SynBraTS"))
    statuses: Counter[int] = Counter()
    failures = []
    with monailabel_process(root, work / "fuzz.log") as (url, _):
        settled(url)
        before = stored(root)  # after the server's own start-up writes (model registry, search index)
        for attempt in attempts(seed=seed, count=requests, study=study):
            status, body = call(url, attempt.method, attempt.path, fields=attempt.fields, files=attempt.files,
                                body=attempt.body, content_type=attempt.content_type)
            statuses[status] += 1
            if status >= 500 and status != 503:
                failures.append({"what": attempt.what, "path": attempt.path[:200], "status": status,
                                 "body": body[:300].decode("latin-1")})
        up = call(url, "GET", "/auth/")[0] == 200
        settled(url)
        changed = sorted(set(stored(root).items()) ^ set(before.items()))
    return {"requests": requests, "statuses": dict(sorted(statuses.items())),
            "4xx": sum(n for s, n in statuses.items() if 400 <= s < 500), "500s": len(failures),
            "failures": failures[:20], "server_up_after": up, "stored_files_changed": len(changed),
            "changed_files": sorted({name for name, _ in changed})[:20]}


class Submitter:
    """Clients that submit labels until stopped, remembering which were answered 200. The n-th
    label marks the slices of the binary digits of n, so each one is found again exactly."""

    def __init__(self, study: str, reference: Path, work: Path) -> None:
        self.study, self.reference, self.work = study, sitk.ReadImage(str(reference)), work
        self.acknowledged: set[int] = set()
        self._next = 1
        self._lock = threading.Lock()

    def payload(self, n: int) -> bytes:
        values = np.zeros(sitk.GetArrayViewFromImage(self.reference).shape, np.uint8)
        values[[j for j in range(values.shape[0]) if n >> j & 1]] = 1
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(self.reference)
        path = self.work / f"label-{n}.nii.gz"
        sitk.WriteImage(image, str(path))
        return path.read_bytes()

    def run(self, url: str, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                n, self._next = self._next, self._next + 1
            status, _ = call(url, "PUT", f"/datastore/label?image={self.study}&tag=final",
                             files={"label": self.payload(n)})
            if status == 200:
                with self._lock:
                    self.acknowledged.add(n)


def number_of(label: np.ndarray) -> int:
    return sum(1 << int(j) for j in np.flatnonzero(label.any(axis=(1, 2))))


def kill_during_saves(work: Path, kills: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    root = work / "saves"
    study = make_studies(root, 1, seed=seed)[0]
    submitter = Submitter(study, t1c_path(root / study), work)
    lost_total = 0
    rounds = []
    for k in range(kills):
        stop = threading.Event()
        with monailabel_process(root, work / f"saves{k}.log") as (url, process):
            clients = [threading.Thread(target=submitter.run, args=(url, stop), daemon=True) for _ in range(2)]
            for c in clients:
                c.start()
            time.sleep(float(rng.uniform(1.0, 6.0)))
            os.killpg(process.pid, signal.SIGKILL)  # mid-save, at a random moment
            stop.set()
            process.wait(30)
            for c in clients:
                c.join(30)
        acknowledged = submitter.acknowledged
        with monailabel_process(root, work / f"check{k}.log") as (url, _):
            versions = json.loads(call(url, "GET", f"/btl/studies/{study}/labels/final")[1])
            found = set()
            for version in versions:
                data = call(url, "GET", f"/btl/studies/{study}/labels/final/{version['version']}")[1]
                path = work / "found.nii.gz"
                path.write_bytes(data)
                found.add(number_of(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))))
        lost = acknowledged - found
        lost_total += len(lost)
        rounds.append({"acknowledged_so_far": len(acknowledged), "versions": len(versions), "lost": sorted(lost)})
        print("kill", k, rounds[-1], flush=True)
    return {"kills": kills, "acknowledged": len(submitter.acknowledged), "lost": lost_total, "rounds": rounds}


def kill_during_training(work: Path, seed: int) -> dict:
    root = work / "training"
    ids = make_studies(root, 3, seed=seed)
    model_dir = root / ".braintumorlabel" / "model"
    with monailabel_process(root, work / "train0.log") as (url, process):
        for image in ids:
            call(url, "PUT", f"/datastore/label?image={image}&tag=final",
                 files={"label": truth_path(root / image).read_bytes()})
        served_before = json.loads(call(url, "GET", "/info/")[1])["models"][MODEL]["model_version"]
        options = {"max_epochs": 200, "steps_per_epoch": 1, "roi_size": 32, "val_every": 1, "fine_tune": True}
        assert call(url, "POST", f"/train/{MODEL}", body=json.dumps(options).encode(),
                    content_type="application/json")[0] == 200
        deadline, running_since = time.monotonic() + 300, None
        while time.monotonic() < deadline:  # killed while the trainer runs: its 3rd epoch, or 5 s in
            if (model_dir / "trainer.lock").exists():
                running_since = running_since or time.monotonic()
                progress = model_dir / "progress.json"
                epoch = json.loads(progress.read_text()).get("epoch", 0) if progress.exists() else 0
                if epoch >= 3 or time.monotonic() - running_since > 5:
                    break
            time.sleep(0.5)
        trainer = json.loads((model_dir / "trainer.lock").read_text())["pid"] if (model_dir / "trainer.lock").exists() \
            else None
        os.killpg(process.pid, signal.SIGKILL)
        if trainer:
            try:
                os.kill(int(trainer), signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(30)
    with monailabel_process(root, work / "train1.log") as (url, _):
        info = json.loads(call(url, "GET", "/info/")[1])
        served_after = info["models"][MODEL]["model_version"]
        restart = call(url, "POST", f"/train/{MODEL}", body=json.dumps({"max_epochs": 1, "steps_per_epoch": 1,
                                                                           "roi_size": 32}).encode(),
                       content_type="application/json")[0]
        call(url, "DELETE", "/train/")
    return {"served_before": served_before, "served_after": served_after,
            "model_warning": info["models"][MODEL].get("model_warning"),
            "train_state_after_kill": info.get("train_stats", {}).get(MODEL, {}).get("state"),
            "new_training_accepted": restart == 200}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report: dict = {"provenance": provenance(), "fuzz": fuzz(work, args.requests, args.seed)}
        print(json.dumps(report["fuzz"], indent=1), flush=True)
        report["kill_during_saves"] = kill_during_saves(work, args.kills, args.seed)
        report["kill_during_training"] = kill_during_training(work, args.seed)
    print(json.dumps({k: v for k, v in report.items() if k != "fuzz"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    ok = report["fuzz"]["500s"] == 0 and report["fuzz"]["stored_files_changed"] == 0 and \
        report["kill_during_saves"]["lost"] == 0 and report["kill_during_training"]["new_training_accepted"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
