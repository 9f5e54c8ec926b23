"""Tasks the Slicer Lib tests run on the server's Python (see ``_server_side.py``): each takes
JSON-able arguments and returns a JSON-able answer, printed as the last line.

    python -m _server_tasks make_studies '{"root": "/tmp/s", "n": 3, "seed": 46}'
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any


def make_studies(root: str, n: int, seed: int, drop: dict[str, str] | None = None) -> list[str]:
    """Generated studies; ``drop``: {study index: sequence} files removed (a study that cannot be segmented)."""
    from _cases import make_studies as generate

    ids = generate(Path(root), n, seed=seed)
    for index, sequence in (drop or {}).items():
        next((Path(root) / ids[int(index)]).glob(f"*-{sequence}.nii.gz")).unlink()
    return ids


def write_label(study: str, out: str, fill: int | None = None, truth: bool = False) -> str:
    """A label on the study's t1c grid: its reference label (``truth``) or a constant ``fill``."""
    import SimpleITK as sitk

    from _cases import t1c_path, truth_path, write_label_like

    values = sitk.GetArrayFromImage(sitk.ReadImage(str(truth_path(Path(study))))) if truth else None
    return str(write_label_like(t1c_path(Path(study)), Path(out), values=values, fill=fill))


def make_search_studies(root: str, seed: int) -> dict[str, str]:
    """Two generated studies and a follow-up of the first (same patient, a larger tumor): study id ->
    its reference label file."""
    from synthbrats import GeneratorConfig

    from _cases import FAST, truth_path, write_generated

    cases = [write_generated(seed, i, FAST, Path(root)) for i in range(2)]
    cases.append(write_generated(seed, 0, GeneratorConfig(2.0, "brats", kind="glioblastoma", tumor_scale=1.3),
                                 Path(root)))
    return {case.name: str(truth_path(case)) for case in cases}


def label_maximum(path: str) -> int:
    import SimpleITK as sitk

    return int(sitk.GetArrayFromImage(sitk.ReadImage(path)).max())  # a view would outlive its image


def image_size(path: str) -> list[int]:
    import SimpleITK as sitk

    return list(sitk.ReadImage(path).GetSize())


def export_dicom(case: str, out: str, seed: int) -> dict[str, Any]:
    """The case as DICOM series (with a localizer and a DWI): which series is which sequence, and
    for each series its files and their attributes as text (what ``ctkDICOMDatabase.fileValue`` gives)."""
    import numpy as np
    import pydicom

    from synthbrats.dicom_export import StudyPlan, export_case

    export_case(Path(case), Path(out), np.random.default_rng(seed), StudyPlan("siemens", "Gadobutrol",
                                                                             ("localizer", "dwi"), None))
    folder = Path(out) / Path(case).name
    record = json.loads((folder / "study.json").read_text())
    series = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in sub.glob("*.dcm"))
        values: dict[str, dict[str, str]] = {}
        for file in files[:1]:
            dataset = pydicom.dcmread(file, stop_before_pixels=True)
            values[file] = {f"{e.tag.group:04X},{e.tag.element:04X}": "\\".join(str(v) for v in e.value)
                            if e.VM > 1 else str(e.value) for e in dataset if e.value is not None and e.VR != "SQ"}
        series.append({"uid": str(pydicom.dcmread(files[0]).SeriesInstanceUID), "files": files, "values": values})
    return {"sequences": {s: record["series"][s] for s in ("t1n", "t1c", "t2w", "t2f")}, "series": series}


def report_studies(root: str, labels: str, baseline: str, follow_up: str) -> None:
    """Two scans of one head: the enhancing shell was thicker at baseline (it shrank since)."""
    import SimpleITK as sitk

    from _volumes import sphere_case, write_case

    images, label = sphere_case(size=(60, 60, 48), spacing=(2.0, 2.0, 2.0))
    before = sitk.GetArrayFromImage(label)
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.Equal(label, 3), [3, 3, 3]))
    before[(grown > 0) & (before == 2)] = 3
    baseline_label = sitk.GetImageFromArray(before)
    baseline_label.CopyInformation(label)
    Path(labels).mkdir(parents=True, exist_ok=True)
    for study, study_label in ((baseline, baseline_label), (follow_up, label)):
        write_case(Path(root) / study, study, images)
        sitk.WriteImage(study_label, str(Path(labels) / f"{study}.nii.gz"))


def pdf_text(path: str) -> str:
    from pypdf import PdfReader

    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(Path(path).read_bytes())).pages)


def server_tables() -> dict[str, Any]:
    """The server's label names and regions, segment codes and colours, and report choices."""
    from lib.brats import LABEL_NAMES, REGIONS
    from lib.dicom.seg import MORPHOLOGICALLY_ALTERED, SEGMENTS
    from lib.report.response import CLINICAL_STATUSES, STEROID_DOSES

    return {"label_names": {str(k): v for k, v in LABEL_NAMES.items()},
            "regions": {k: list(v) for k, v in REGIONS.items()},
            "segments": [{"value": s.value, "label": s.label, "description": s.description, "rgb": list(s.rgb),
                          "code": s.property_type.value, "scheme": s.property_type.scheme_designator}
                         for s in SEGMENTS],
            "category": [MORPHOLOGICALLY_ALTERED.value, MORPHOLOGICALLY_ALTERED.scheme_designator],
            "steroid_doses": sorted(STEROID_DOSES), "clinical_statuses": sorted(CLINICAL_STATUSES)}


def serve() -> None:
    """Answer requests until stdin closes: one JSON line ``[name, arguments]`` in, one JSON line
    ``[true, answer]`` or ``[false, traceback]`` out (what a task prints goes to stderr)."""
    import contextlib
    import traceback

    answers = sys.stdout
    for line in sys.stdin:
        name, arguments = json.loads(line)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                reply = [True, globals()[name](**arguments)]
        except Exception:
            reply = [False, traceback.format_exc()[-3000:]]
        answers.write(json.dumps(reply) + "\n")
        answers.flush()


if __name__ == "__main__":
    from lib.compat import highdicom_on_numpy2

    highdicom_on_numpy2()  # this is a process start (lib/compat.py)
    serve()
