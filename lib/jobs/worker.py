"""``btl-worker``: a job worker, one per CPU or GPU slot, on any host that reaches the broker and
the studies (the PACS, or a studies folder mounted at the same path).

    btl-worker [--broker amqp://user:password@host:5672//] [--model-dir DIR] [--name NAME] \\
        [--device cpu|cuda|cuda:1] [--conf key value ...]

The broker comes from ``--broker`` or ``BTL_BROKER_URL``; PACS credentials from
``BTL_PACS_USERNAME``/``BTL_PACS_PASSWORD`` or ``--conf pacs_credentials_file FILE`` (as for
the server; ``--conf cache_dir DIR`` is where PACS volumes are cached on this host). The model
served is the newest in ``--model-dir`` (a folder shared with the server, so that a model the
server publishes reaches every worker), else the bundled one; it is loaded once, and again when
the file changes. A job that asks for another model version than the one served is refused
(failed, with both versions named).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from lib.compat import highdicom_on_numpy2
from lib.infers.pipeline import TumorSegmenter
from lib.model import PredictionSettings
from lib.model.registry import BUNDLED_CHECKPOINT, served_checkpoints

from .broker import QUEUE, BrokerUnavailable, celery_app, check_broker, register_segment_task
from .work import Workbench

MODEL_FILE = "brats_segresnet.pt"


def served_segmenter(model_dir: Path | None, settings: PredictionSettings | None = None) -> TumorSegmenter:
    """The segmenter of the newest model in ``model_dir`` (then the one it replaced), else of
    the bundled model."""
    files = served_checkpoints(model_dir / MODEL_FILE) if model_dir else [BUNDLED_CHECKPOINT]
    return TumorSegmenter(files, settings)


def main(argv: list[str] | None = None) -> int:
    highdicom_on_numpy2()  # once, where the process starts: see lib/compat.py
    ap = argparse.ArgumentParser(prog="btl-worker", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=os.environ.get("BTL_BROKER_URL", ""), help="default: $BTL_BROKER_URL")
    ap.add_argument("--model-dir", type=Path, help="the server's model folder (default: the bundled model only)")
    ap.add_argument("--name", default=f"btl@{socket.gethostname()}", help="this worker's name in job states")
    ap.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    ap.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.broker:
        print("btl-worker: give the broker (--broker or BTL_BROKER_URL)", file=sys.stderr)
        return 2
    app = celery_app(args.broker)
    try:
        check_broker(app)
    except BrokerUnavailable as exc:
        print(f"btl-worker: {exc}", file=sys.stderr)
        return 2
    segmenter = served_segmenter(args.model_dir, PredictionSettings(device=args.device))
    print(f"btl-worker {args.name}: model {segmenter.checkpoint().version}, queue {QUEUE}", flush=True)
    register_segment_task(app, Workbench(segmenter, dict(args.conf), name=args.name))
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # it logs each result: the label included
    app.worker_main(["worker", "--pool=solo", "--concurrency=1", f"--hostname={args.name}", f"--queues={QUEUE}",
                     "--loglevel=INFO", "--without-gossip"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
