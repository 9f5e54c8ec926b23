"""Cohort throughput: ``btl-batch`` on one cohort of generated studies, in this process and through
a real RabbitMQ with 1 and with 2 ``btl-worker`` processes, in one run; then the rerun of the
finished cohort (every study from the cache). Prints studies per minute, the 2-worker / 1-worker
ratio, the queue's overhead per study against in-process execution, and the rerun's time.

    .venv/bin/python bench/cohort_throughput.py --studies 8 --out bench/results/cohort_throughput.json

The CPU threads are split between the workers (each worker gets cores / workers), so the
ratio says what a second worker buys on the same machine; on separate hosts each brings its own
cores. Studies: generated 1 mm cases (240 x 240 x 155), the same for every arm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _provenance import provenance  # noqa: E402

from lib.atomic import write_json  # noqa: E402
from lib.jobs.sandbox import start_rabbitmq  # noqa: E402
from lib.model import load_checkpoint  # noqa: E402
from lib.model.registry import BUNDLED_CHECKPOINT  # noqa: E402
from synthbrats import GeneratorConfig, generate_case, write_case  # noqa: E402

BIN = Path(sys.executable).parent


def batch(studies: Path, output: Path, broker: str | None) -> float:
    """Seconds ``btl-batch`` takes on the cohort (the process started included)."""
    command = [str(BIN / "btl-batch"), "--input", str(studies), "--output", str(output)]
    command += ["--broker", broker] if broker else []
    env = {k: v for k, v in os.environ.items() if k != "BTL_BROKER_URL"}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": str(os.cpu_count())})
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"btl-batch failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    print(done.stdout.strip().splitlines()[-1], flush=True)
    return seconds


def with_workers(n: int, broker_url: str, logs: Path) -> list[subprocess.Popen]:
    threads = max(1, (os.cpu_count() or 1) // n)
    workers = []
    for i in range(n):
        log = logs / f"worker-{n}-{i}.log"
        workers.append(subprocess.Popen([str(BIN / "btl-worker"), "--broker", broker_url, "--name", f"w{i}"],
                                        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "OMP_NUM_THREADS": str(threads)}))
    for i in range(n):
        log = logs / f"worker-{n}-{i}.log"
        deadline = time.monotonic() + 300
        while "ready" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {i} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
    return workers


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cohort_throughput.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="btl-cohort-bench-"))
    try:
        studies = work / "studies"
        for i in range(args.studies):
            write_case(generate_case(90, i, GeneratorConfig(spacing=1.0, style="brats")), studies)
        seconds: dict[str, float] = {"in_process": batch(studies, work / "out-local", None)}
        with start_rabbitmq() as broker:
            for n in (1, 2):
                workers = with_workers(n, broker.url, work)
                try:
                    seconds[f"{n}_worker{'s' if n > 1 else ''}"] = batch(studies, work / f"out-{n}", broker.url)
                finally:
                    stop(workers)
        seconds["rerun_all_cached"] = batch(studies, work / "out-local", None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_minute = {k: round(args.studies * 60 / v, 2) for k, v in seconds.items() if k != "rerun_all_cached"}
    result = {
        "provenance": provenance(BUNDLED_CHECKPOINT, load_checkpoint(BUNDLED_CHECKPOINT).version),
        "studies": args.studies, "study_size": "generated, 1 mm, 240 x 240 x 155",
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "studies_per_minute": per_minute,
        "ratio_2_workers_to_1": round(seconds["1_worker"] / seconds["2_workers"], 2),
        "queue_overhead_s_per_study": round((seconds["1_worker"] - seconds["in_process"]) / args.studies, 2),
        "note": "each arm's time includes starting btl-batch (its imports and model load) and keying every study",
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))


if __name__ == "__main__":
    main()
