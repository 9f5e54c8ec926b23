"""``btl-batch``: segment a whole cohort, from a folder of studies or a PACS query, into a folder.

    btl-batch --input STUDIES --output RESULTS [--broker URL] [--model-dir DIR]
    btl-batch --pacs https://pacs/dicom-web --query 'StudyDate=20240101-20241231&ModalitiesInStudy=MR' \\
        --output RESULTS [--broker URL] [--conf key value ...]

Per study ``RESULTS/<study>/<study>-label.nii.gz`` (on the study's t1c grid: 1 NCR, 2 ED,
3 ET) and ``<study>-result.json`` (volumes, measurements, model version, timings, notes, the
worker); for the cohort ``cohort.csv``, ``cohort.json`` and ``cohort.png``. From a PACS, each
label also goes back to the PACS as a DICOM SEG next to its study.

A study already in RESULTS with the same input, model version and pipeline is not segmented
again (the run says how many were cached); an interrupted run, run again, resumes. A study
that cannot be segmented is a failed row with its reason, the others go on, and the exit
status is 1. Without ``--broker`` (or ``BTL_BROKER_URL``) the studies are segmented in this
process; with it, by the ``btl-worker`` processes of that broker. The model is the newest in
``--model-dir`` (default: the model a server on the same folder trained, else the bundled one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from lib.compat import highdicom_on_numpy2
from lib.datastore import open_datastore
from lib.datastore.base import StudyDatastore
from lib.datastore.study_folder import META_DIR
from lib.errors import InputError, ModelUnavailableError, PacsUnavailableError, UnknownIdError
from lib.infers.pipeline import TumorSegmenter

from .broker import BrokerUnavailable, CeleryRunner
from .cohort import CACHED, DONE, FAILED, Cohort, DatastoreLabels, Destination, OutputFolder, Plan, write_summary
from .runners import InProcessRunner, Runner
from .service import JobSettings
from .work import RUNNING, StudyRef, Workbench
from .worker import served_segmenter

logger = logging.getLogger(__name__)


def pipeline_parameters(segmenter: TumorSegmenter) -> dict[str, Any]:
    """What, besides the model and the input, decides a label (the device does not)."""
    return {k: v for k, v in dataclasses.asdict(segmenter.settings).items() if k != "device"}


def main(argv: list[str] | None = None) -> int:
    highdicom_on_numpy2()  # once, where the process starts: see lib/compat.py
    ap = argparse.ArgumentParser(prog="btl-batch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="a folder of studies (case folders or 4-channel files)")
    source.add_argument("--pacs", help="a DICOMweb address (credentials: BTL_PACS_USERNAME, BTL_PACS_PASSWORD)")
    ap.add_argument("--query", default="ModalitiesInStudy=MR", help="QIDO-RS study keys, with --pacs")
    ap.add_argument("--output", type=Path, required=True, help="the results folder")
    ap.add_argument("--broker", default=os.environ.get("BTL_BROKER_URL", ""), help="default: $BTL_BROKER_URL")
    ap.add_argument("--model-dir", type=Path, help="the served model's folder")
    ap.add_argument("--user", default=os.environ.get("USER", "btl-batch"), help="recorded with PACS labels")
    ap.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _run(args)
    except (InputError, UnknownIdError, ModelUnavailableError, PacsUnavailableError, BrokerUnavailable,
            ValueError) as exc:
        print(f"btl-batch: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    output = OutputFolder(args.output)
    output.check_writable()
    conf = dict(args.conf)
    if args.pacs:
        query = dict(urllib.parse.parse_qsl(args.query, keep_blank_values=False, strict_parsing=True))
        store: StudyDatastore = open_datastore(args.pacs, {**conf, "pacs_study_filter": json.dumps(query)})
        address, model_dir = args.pacs, args.model_dir
    else:
        if not args.input.is_dir():
            raise InputError(f"--input {args.input} is not a folder")
        store = open_datastore(str(args.input), conf)
        address, model_dir = str(args.input.resolve()), args.model_dir or args.input / META_DIR / "model"
    studies = store.list_images()
    if not studies:
        raise InputError(f"no studies in {args.pacs or args.input}" + (f" for {args.query}" if args.pacs else ""))
    segmenter = served_segmenter(model_dir)
    plan = Plan(segmenter.checkpoint().version, pipeline_parameters(segmenter))
    runner: Runner = CeleryRunner(args.broker, JobSettings.from_environment().stall_s) if args.broker else \
        InProcessRunner(Workbench(segmenter, conf, stores={address: store}))
    destinations: list[Destination] = [output]
    if args.pacs:
        destinations.append(DatastoreLabels(store, args.user))
    cohort = Cohort(store, [StudyRef(address, study) for study in studies], destinations, runner, plan)
    started = time.monotonic()
    try:
        cohort.prepare()
        cached = cohort.counts()[CACHED]
        print(f"{len(studies)} studies, model {plan.model_version}: {cached} cached, "
              f"{len(studies) - cached - cohort.counts()[FAILED]} to segment"
              + (f" on the workers of {_shown(args.broker)}" if args.broker else " here"), flush=True)
        _run_with_progress(cohort)
    except KeyboardInterrupt:
        cohort.cancel()
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        runner.close()
        for row in cohort.rows:
            if row.state == FAILED:
                output.write_failure(row)
        write_summary(cohort.rows, args.output, {"cohort": str(args.pacs or args.input), "query": args.query
                                                 if args.pacs else None, "model_version": plan.model_version,
                                                 "seconds": round(time.monotonic() - started, 1)})
    counts = cohort.counts()
    if args.pacs and hasattr(store, "flush_outbox"):
        store.flush_outbox()
    print(f"{counts[DONE]} segmented, {counts[CACHED]} cached, {counts[FAILED]} failed "
          f"({time.monotonic() - started:.0f} s); {args.output / 'cohort.csv'}")
    for row in cohort.rows:
        if row.state == FAILED:
            print(f"  failed {row.study}: {row.error}", file=sys.stderr)
    return 1 if counts[FAILED] else 0


def _run_with_progress(cohort: Cohort) -> None:
    from tqdm import tqdm

    todo = [row for row in cohort.rows if not row.finished()]
    with tqdm(total=len(todo), unit="study", dynamic_ncols=True, file=sys.stderr) as bar:
        def update(current: Cohort) -> None:
            finished = sum(row.finished() for row in todo)
            bar.update(finished - bar.n)
            counts = current.counts()
            bar.set_postfix(running=counts[RUNNING], failed=counts[FAILED], refresh=False)

        cohort.run(update)


def _shown(url: str) -> str:
    """A broker address without its password."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


if __name__ == "__main__":
    sys.exit(main())
