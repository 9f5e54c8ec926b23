"""``btl-report``: a clinical report of a study folder, with a prior study when there is one.

    btl-report --study FOLDER [--label FILE | --segment] [--prior FOLDER [--prior-label FILE]] \\
        [--steroid-dose none|stable|increased|decreased|unknown] [--clinical-status improved|stable|worse|unknown] \\
        --out FOLDER [--sign NAME --impression TEXT [--recommendations TEXT]]

Writes ``report.json``, ``report.pdf`` and ``key-images.png`` into ``--out``. The label is a
NIfTI on the study's t1c grid (values 1 NCR, 2 ED, 3 ET; 4 is read as 3); ``--segment``
segments the study with the bundled model instead, and a study folder's ``-seg`` file is used
when neither is given. ``--sign`` approves every finding as its author and signs the report
(for a demo; a clinician reviews each finding in the Slicer module or through the server).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

from lib.brats import read_label
from lib.compat import highdicom_on_numpy2

from .build import StudyInputs, draft_report
from .pdf import write_pdf
from .response import ClinicalInputs


def _label(study: Path, given: Path | None, segment: bool, work: Path) -> tuple[Path, dict]:
    if given is not None:
        return given, {"tag": "file", "version": 0, "path": str(given)}
    if segment:
        from lib.infers.pipeline import TumorSegmenter  # the model only when asked for
        from lib.model.registry import BUNDLED_CHECKPOINT

        result = TumorSegmenter([BUNDLED_CHECKPOINT]).segment(str(study), study.name)
        path = work / f"{study.name}-label.nii.gz"
        sitk.WriteImage(result.label, str(path), useCompression=True)
        return path, {"tag": "model", "version": 0, "model_version": result.model_version}
    found = sorted(study.glob("*-seg.nii*"))
    if not found:
        raise SystemExit(f"btl-report: {study} has no -seg file; give --label or --segment")
    label = read_label(found[0])
    path = work / f"{study.name}-seg.nii.gz"
    sitk.WriteImage(label, str(path), useCompression=True)
    return path, {"tag": "case file", "version": 0, "path": str(found[0])}


def main(argv: list[str] | None = None) -> int:
    highdicom_on_numpy2()  # once, where the process starts: see lib/compat.py
    ap = argparse.ArgumentParser(prog="btl-report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--label", type=Path)
    ap.add_argument("--segment", action="store_true", help="segment the study (and the prior) with the bundled model")
    ap.add_argument("--prior", type=Path)
    ap.add_argument("--prior-label", type=Path)
    ap.add_argument("--steroid-dose", default="unknown")
    ap.add_argument("--clinical-status", default="unknown")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sign", metavar="NAME")
    ap.add_argument("--impression", default="")
    ap.add_argument("--recommendations", default="")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        label, ref = _label(args.study, args.label, args.segment, work)
        current = StudyInputs(args.study.name, args.study, label, ref, {"Study": args.study.name})
        prior = None
        if args.prior:
            prior_label, prior_ref = _label(args.prior, args.prior_label, args.segment, work)
            prior = StudyInputs(args.prior.name, args.prior, prior_label, prior_ref, {"Study": args.prior.name})
        clinical = ClinicalInputs(steroid_dose=args.steroid_dose, clinical_status=args.clinical_status)
        images = args.out / "key-images.png"
        report = draft_report(current, prior, model_version=ref.get("model_version"), clinical=clinical,
                              images_path=images)
    if args.sign:
        for finding in report.findings:
            report = report.reviewed(finding.key, "approved", args.sign)
        report = report.signed(args.sign, args.impression or "See findings.", args.recommendations)
    (args.out / "report.json").write_text(json.dumps(report.to_dict(), indent=1))
    write_pdf(report, args.out / "report.pdf", images)
    for finding in report.findings:
        print(f"- {finding.shown_text}")
    print(f"report: {args.out / 'report.pdf'} ({'signed' if report.final else 'draft'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
