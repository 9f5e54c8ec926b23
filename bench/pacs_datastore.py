"""PACS datastore: listing 100 studies and fetching one four-series study, ours next to MONAI
Label's own ``DICOMWebDatastore``, on the same private Orthanc in one run.

MONAI Label's datastore has one image per series: listing returns series UIDs without saying
which sequence each is, and a four-sequence study is four separate fetches. Ours lists MR
studies and identifies their sequences (a QIDO-RS query per study and per series, cached
until the study changes), and fetches a study as one case folder.

    .venv/bin/python bench/pacs_datastore.py --out bench/results/pacs_datastore.json

Needs the Debian packages orthanc and orthanc-dicomweb. Writes the JSON and a Markdown
table next to it and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

sys.path.insert(0, str(REPO / "sample-data"))

from lib.datastore.dicomweb import DicomWebStudyDatastore  # noqa: E402
from lib.pacs.client import PacsClient, PacsConfig  # noqa: E402
from lib.pacs.sandbox import start_orthanc  # noqa: E402
from synthbrats import GeneratorConfig, generate_case, write_case  # noqa: E402
from synthbrats.dicom_export import StudyPlan, export_case  # noqa: E402


def copies_of_study(study: Path, count: int, slices: int) -> list[bytes]:
    """``count`` copies of an exported study with new UIDs, each series cut to ``slices``
    instances (listing reads headers; fewer pixels keep the upload short)."""
    series = {p: sorted(p.glob("*.dcm"))[:slices] for p in study.iterdir() if p.is_dir()}
    out = []
    for _ in range(count):
        study_uid = generate_uid()
        for files in series.values():
            series_uid = generate_uid()
            for f in files:
                ds = pydicom.dcmread(f)
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                with tempfile.SpooledTemporaryFile() as buffer:
                    ds.save_as(buffer, write_like_original=False)
                    buffer.seek(0)
                    out.append(buffer.read())
    return out


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pacs_datastore.json")
    args = ap.parse_args()
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass
    from monailabel.datastore.dicom import DICOMWebDatastore

    with tempfile.TemporaryDirectory() as tmp, start_orthanc() as orthanc:
        tmp_path = Path(tmp)
        case = write_case(generate_case(77, 0, GeneratorConfig(spacing=2.0, style="brats")), tmp_path / "cases")
        full = export_case(case, tmp_path / "dicom", np.random.default_rng(0),
                           StudyPlan("siemens", "Gadobutrol", ("localizer",), None))
        orthanc.upload_folder(tmp_path / "dicom")
        t = time.perf_counter()
        for blob in copies_of_study(tmp_path / "dicom" / case.name, args.studies - 1, slices=10):
            orthanc.request("/instances", blob, "POST")
        upload_s = time.perf_counter() - t

        config = PacsConfig(orthanc.dicomweb_url, orthanc.username, orthanc.password)
        ours = DicomWebStudyDatastore(PacsClient(config), tmp_path / "ours")
        session = create_session_from_user_pass(orthanc.username, orthanc.password)
        theirs = DICOMWebDatastore(DICOMwebClient(url=orthanc.dicomweb_url, session=session),
                                   search_filter={"Modality": "MR"}, cache_path=str(tmp_path / "theirs"))

        results = {
            "list_ids_s": {"ours": timed(lambda: (ours.refresh(), ours.list_images()), 3),
                           "monailabel": timed(lambda: (theirs.list_images.cache_clear()
                                                        if hasattr(theirs.list_images, "cache_clear") else None,
                                                        theirs.list_images()), 3)},
        }
        ids_ours, ids_theirs = ours.list_images(), theirs.list_images()
        results["images_listed"] = {"ours": len(ids_ours), "monailabel": len(ids_theirs)}
        results["identify_sequences_cold_s"] = timed(lambda: [ours.get_image_info(u) for u in ids_ours])
        results["identify_sequences_warm_s"] = timed(lambda: [ours.get_image_info(u) for u in ids_ours])
        study = full["study_uid"]
        results["fetch_study_s"] = {
            "ours": timed(lambda: ours.study_path(study)),
            "monailabel": timed(lambda: [theirs.get_image_uri(full["series"][s])
                                         for s in ("t1n", "t1c", "t2w", "t2f")]),
        }
        # MONAI Label's datastore watches its cache folder from a thread; stop it before the folder goes
        observer = getattr(theirs, "_observer", None)
        if observer is not None:
            observer.stop()
            observer.join()
    list_ratio = results["list_ids_s"]["monailabel"] / results["list_ids_s"]["ours"]
    fetch_ratio = results["fetch_study_s"]["monailabel"] / results["fetch_study_s"]["ours"]
    report = {"provenance": provenance(), "studies": args.studies, "upload_s": upload_s, **results,
              "ratio_list_monailabel_over_ours": list_ratio, "ratio_fetch_monailabel_over_ours": fetch_ratio}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    lines = [
        f"| {args.studies} MR studies in Orthanc | ours | MONAI Label DICOMWebDatastore |", "|---|---:|---:|",
        f"| images listed | {results['images_listed']['ours']} studies "
        f"| {results['images_listed']['monailabel']} series |",
        f"| list image ids (s) | {results['list_ids_s']['ours']:.3f} | {results['list_ids_s']['monailabel']:.3f} |",
        f"| identify t1n/t1c/t2w/t2f of every study, cold / warm cache (s) | "
        f"{results['identify_sequences_cold_s']:.2f} / {results['identify_sequences_warm_s']:.2f} | not done |",
        f"| fetch and convert one four-series study (s) | {results['fetch_study_s']['ours']:.2f} | "
        f"{results['fetch_study_s']['monailabel']:.2f} (4 fetches) |", "",
        f"MONAI Label / ours: listing x{list_ratio:.2f}, fetching a study x{fetch_ratio:.2f}.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
