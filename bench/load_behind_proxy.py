"""Two servers behind nginx under an annotation team's load: ``/info/`` latency (p50, p95) while 8
annotators take studies and submit labels and 4 inferences run, for a bounded time, next to one
server alone under the same load, in one run. Also counts what the load did (labels
acknowledged, inferences, 503 answers of a full queue).

    .venv/bin/python bench/load_behind_proxy.py --out bench/results/load_behind_proxy.json

Authentication is on (a real OpenID Connect provider on loopback, tests/oidc_provider): a
deployment behind a proxy needs it. Studies: generated 2 mm cases.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from _provenance import provenance  # noqa: E402

from lib.atomic import write_json  # noqa: E402
from lib.model import load_checkpoint  # noqa: E402
from lib.model.registry import BUNDLED_CHECKPOINT  # noqa: E402
from lib.server.proxy_sandbox import start_proxy  # noqa: E402

from _cases import make_studies, truth_path  # noqa: E402
from _http import call  # noqa: E402
from _oidc import oidc_provider  # noqa: E402
from _server import monailabel_process  # noqa: E402

MODEL, AUDIENCE = "brats_segresnet", "braintumorlabel"


def load(url: str, studies: Path, ids: list[str], tokens: dict[str, str], duration_s: float) -> dict:
    """The team's load against ``url`` for ``duration_s``; /info/ asked every 100 ms meanwhile."""
    labels = {s: truth_path(studies / s).read_bytes() for s in ids}
    counts = {"labels": 0, "inferences": 0, "busy_503": 0, "other": 0}
    info_ms: list[float] = []
    lock, stop = threading.Lock(), threading.Event()
    deadline = time.monotonic() + duration_s

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    def annotate(n: int) -> None:
        while time.monotonic() < deadline:
            status, body = call(url, "POST", "/activelearning/random", body=json.dumps({"client_id": f"a{n}"}).encode(),
                                content_type="application/json", token=tokens["annotator"])
            study = json.loads(body).get("id") if status == 200 else None
            if not study:
                time.sleep(0.5)
                continue
            status, _ = call(url, "PUT", f"/datastore/label?image={study}&tag=final", files={"label": labels[study]},
                             token=tokens["annotator"])
            count("labels" if status == 200 else "busy_503" if status == 503 else "other")

    def segment(n: int) -> None:
        while time.monotonic() < deadline:
            status, _ = call(url, "POST", f"/infer/{MODEL}?image={ids[n % len(ids)]}&output=json",
                             token=tokens["clinician"])
            count("inferences" if status == 200 else "busy_503" if status == 503 else "other")

    def ask_info() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = call(url, "GET", "/info/", token=tokens["clinician"])
            if status == 200:
                info_ms.append((time.perf_counter() - started) * 1000)
            stop.wait(0.1)

    sampler = threading.Thread(target=ask_info)
    sampler.start()
    threads = [threading.Thread(target=annotate, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=segment, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    sampler.join()
    ordered = sorted(info_ms)
    return {**counts, "info_requests": len(ordered), "info_p50_ms": round(statistics.median(ordered), 1),
            "info_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1), "info_max_ms": round(ordered[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=24)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_behind_proxy.json")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "btl-load-bench")
    args = ap.parse_args()
    results = {}
    with oidc_provider(audience=AUDIENCE) as provider:
        env = {"BTL_OIDC_ISSUER": provider.issuer, "BTL_OIDC_AUDIENCE": AUDIENCE}
        tokens = {"annotator": provider.token("annotator-client", AUDIENCE),
                  "clinician": provider.token("clinician-client", AUDIENCE)}
        for arm in ("one server", "two servers behind nginx"):
            studies = args.work / arm.replace(" ", "-")
            ids = make_studies(studies, args.studies, seed=95)
            with monailabel_process(studies, args.work / f"{arm[:3]}-a.log", env=env) as (first, _):
                if arm == "one server":
                    results[arm] = load(first, studies, ids, tokens, args.duration_s)
                else:
                    with monailabel_process(studies, args.work / f"{arm[:3]}-b.log", env=env) as (second, _), \
                            start_proxy([first.removeprefix("http://"), second.removeprefix("http://")]) as proxy:
                        results[arm] = load(proxy.url, studies, ids, tokens, args.duration_s)
                        results[arm]["answered_by"] = proxy.upstreams_used()
            print(arm, json.dumps(results[arm]), flush=True)
    write_json(args.out, {"provenance": provenance(BUNDLED_CHECKPOINT, load_checkpoint(BUNDLED_CHECKPOINT).version),
                          "duration_s": args.duration_s, "annotators": 8, "inferences_in_parallel": 4,
                          "arms": results})


if __name__ == "__main__":
    main()
