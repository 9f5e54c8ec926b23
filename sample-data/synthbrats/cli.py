"""``synthbrats``: generate synthetic BraTS-style cases into a folder."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .case import STYLE_CHOICES, GeneratorConfig, case_id_for, generate_case, write_case
from .tumor import KINDS


def _make_one(seed: int, index: int, config: GeneratorConfig, out: Path) -> str:
    start = time.perf_counter()
    case = generate_case(seed, index, config)
    write_case(case, out)
    vols = ", ".join(f"{k} {v:.1f} mL" for k, v in case.meta["volumes_ml"].items())
    kind = case.meta["tumors"][0]["kind"] if case.meta["tumors"] else "no tumor"
    return f"{case.case_id}: {case.meta['site']['style']}, {kind}, {vols} ({time.perf_counter() - start:.1f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="synthbrats",
        description="Generate synthetic four-sequence brain MRI with BraTS tumor labels "
                    "(MNI152 anatomy, no patient data). Deterministic for a seed; cases already "
                    "present in the output folder are kept.")
    parser.add_argument("--cases", type=int, required=True, help="number of cases")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="output folder, one sub-folder per case")
    parser.add_argument("--start", type=int, default=0, help="index of the first case (default 0)")
    parser.add_argument("--style", choices=STYLE_CHOICES, default="mixed",
                        help="brats: co-registered 1 mm 240x240x155; raw: per-sequence grids, thick "
                             "slices, orientations and motion; mixed: half each (default)")
    parser.add_argument("--domain-randomization", type=float, default=0.0, metavar="P",
                        help="probability that a case gets random per-tissue intensities (default 0)")
    parser.add_argument("--kind", choices=KINDS, default=None, help="force a tumor kind (default: random)")
    parser.add_argument("--spacing", type=float, default=1.0,
                        help="working resolution in mm (default 1; 2 is 8x faster, for tests)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--follow-up-scale", type=float, default=1.0, metavar="F",
                        help="a follow-up of each case: same subject and site, tumors scaled by F "
                             "(e.g. 0.6 shrinks them, 1.3 grows them); ids end in -followup")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    config = GeneratorConfig(args.spacing, args.style, args.domain_randomization, args.kind, args.follow_up_scale)
    suffix = "-followup" if args.follow_up_scale != 1.0 else ""
    todo = [i for i in range(args.start, args.start + args.cases)
            if not (args.out / (case_id_for(args.seed, i) + suffix)).is_dir()]
    if len(todo) < args.cases:
        print(f"{args.cases - len(todo)} case(s) already in {args.out}, kept")
    if args.workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for line in pool.map(_make_one, [args.seed] * len(todo), todo, [config] * len(todo),
                                 [args.out] * len(todo)):
                print(line, flush=True)
    else:
        for i in todo:
            print(_make_one(args.seed, i, config, args.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
