"""Retrieval quality and speed of the case search (lib/search), measured through the search
service the server runs.

``cohort``: a generated cohort with known truth (synthbrats: tumor position, kind, patient,
time point), segmented by the bundled model, indexed, reported and signed. Printed and saved:

- precision@5 for "same region of the brain" (the octant of the primary lesion's centre:
  right/left, anterior/posterior of y = -20 mm, above/below z = 20 mm, subject RAS) and for
  "same tumor type" (glioma or metastasis), by image, tumor and both, against a random ranking
  and a volume-only ranking (|log(1 + WT mL)| difference) computed in the same run;
- for each follow-up scan, the rank at which its own baseline comes back, the same four ways,
  and whether the hit carries the same-patient flag;
- text search precision@5, keyword and semantic, of queries written for findings the reports
  state (hemisphere, midline, measurable lesion, response category), relevance from the
  report's own structured findings.

``real``: the real labelled cases: does similarity by the image embedding (pooled by the
model's own segmentation) rank the other cases the way the reference labels' descriptors do?
Spearman's rho and NDCG@3 per query case, averaged, with a random ranking for scale.

``speed``: 100,000 generated studies (feature vectors and template report text) in one index:
build time, size on disk, and p50/p95 latency of similar (k = 10; image, tumor, both, with a
filter), keyword and semantic search.

    nice .venv/bin/python bench/case_search.py cohort --work build/case-search --baselines 60 --follow-ups 30 \
        [--labels reference]
    nice .venv/bin/python bench/case_search.py real --cases data/real --work build/case-search-real
    nice .venv/bin/python bench/case_search.py speed --studies 100000 --work build/case-search-speed
Results go to bench/results/case_search_<part>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import provenance  # noqa: E402

from lib.brats import labelled_cases, read_label  # noqa: E402
from lib.datastore.base import FINAL, ORIGINAL  # noqa: E402
from lib.datastore.study_folder import StudyFolderDatastore  # noqa: E402
from lib.infers.pipeline import TumorSegmenter  # noqa: E402
from lib.model import load_checkpoint  # noqa: E402
from lib.model.checkpoint import read_checkpoint_record  # noqa: E402
from lib.report.response import ClinicalInputs  # noqa: E402
from lib.report.service import ReportService  # noqa: E402
from lib.report.store import ReportStore  # noqa: E402
from lib.search.descriptors import TumorDescriptors, tumor_vector  # noqa: E402
from lib.search.filters import parse_filters  # noqa: E402
from lib.search.index import SearchIndex  # noqa: E402
from lib.search.service import SearchService  # noqa: E402
from lib.search.text import SENTENCE_DIM  # noqa: E402
from synthbrats import GeneratorConfig, generate_case, write_case  # noqa: E402

BUNDLED = REPO / "monailabel_app" / "model" / "brats_segresnet.pt"
RESULTS = REPO / "bench" / "results"
WAYS = ("image", "tumor", "both")


# --------------------------------------------------------------------------- helpers
def region_of(meta: dict[str, Any]) -> str:
    x, y, z = meta["tumors"][0]["centre"]
    return f"{'R' if x > 0 else 'L'}{'A' if y > -20 else 'P'}{'S' if z > 20 else 'I'}"


def type_of(meta: dict[str, Any]) -> str:
    return "metastasis" if meta["tumors"][0]["kind"] == "metastasis" else "glioma"


def precision_at(ranked: list[str], truth: dict[str, str], query: str, k: int = 5) -> float:
    top = ranked[:k]
    return sum(truth[s] == truth[query] for s in top) / max(len(top), 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def ndcg(ranked_relevance: np.ndarray, ideal_relevance: np.ndarray, k: int) -> float:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((ranked_relevance[:k] * discounts[: len(ranked_relevance[:k])]).sum())
    ideal = float((np.sort(ideal_relevance)[::-1][:k] * discounts[: min(k, len(ideal_relevance))]).sum())
    return dcg / ideal if ideal > 0 else 0.0


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 2)


def save(part: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"provenance": provenance(BUNDLED, read_checkpoint_record(BUNDLED)[0]), **result}
    (RESULTS / f"case_search_{part}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def segment_all(store: StudyFolderDatastore, segmenter: TumorSegmenter, log: Any = print) -> None:
    """The bundled model's segmentation of every study, saved as its original label."""
    for study in store.list_images():
        if ORIGINAL in store.label_tags(study):
            continue
        started = time.perf_counter()
        result = segmenter.segment(store.study_path(study), study)
        out = store.root / ".braintumorlabel" / "tmp-label.nii.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        import SimpleITK as sitk

        sitk.WriteImage(result.label, str(out))
        store.add_label(study, str(out), ORIGINAL, {"model": "bench"}, model_version=result.model_version)
        log(f"segmented {study} ({time.perf_counter() - started:.1f} s)")


# --------------------------------------------------------------------------- cohort
def make_cohort(folder: Path, baselines: int, follow_ups: int, seed: int) -> None:
    config = GeneratorConfig(spacing=2.0, style="brats")
    for i in range(baselines):
        if not (folder / f"SynBraTS-{seed:05d}-{i:03d}").exists():
            write_case(generate_case(seed, i, config), folder)
    for i in range(follow_ups):
        scale = 0.6 if i % 2 == 0 else 1.4
        if not (folder / f"SynBraTS-{seed:05d}-{i:03d}-followup").exists():
            write_case(generate_case(seed, i, GeneratorConfig(spacing=2.0, style="brats", tumor_scale=scale)), folder)


#: Text queries: (query, what makes a report relevant, from its structured findings).
TEXT_QUERIES: list[tuple[str, str]] = [
    ("right hemisphere", "right"),
    ("left hemisphere", "left"),
    ("crosses the midline", "crosses"),
    ("does not cross the midline", "not crosses"),
    ("measurable enhancing lesion", "measurable"),
    ("no enhancing tumor", "no enhancing"),
    ("several separate lesions", "multiple"),
    ("progressive disease", "PD"),
    ("partial response", "PR"),
    ("tumour extending across both sides of the brain", "crosses"),
    ("lesion on the patient's left side", "left"),
    ("the tumour got bigger since the last scan", "PD"),
]


def relevant(report: dict[str, Any], what: str) -> bool:
    m = report["measurements"]
    category = ((report.get("response") or {}).get("bidimensional") or {}).get("category")
    return {"right": m["hemisphere"] == "right", "left": m["hemisphere"] == "left",
            "crosses": m["crosses_midline"] is True, "not crosses": m["crosses_midline"] is False,
            "measurable": bool(m["targets"]), "no enhancing": not m["enhancing_lesions"],
            "multiple": len(m["lesions"]) > 1, "PD": category == "PD", "PR": category == "PR"}[what]


def sign_reports(store: StudyFolderDatastore, reports: ReportService, log: Any = print) -> dict[str, dict[str, Any]]:
    signed = {}
    for study in store.list_images():
        if reports.store.versions(study):
            signed[study] = reports.latest(study).to_dict()
            continue
        prior = study.removesuffix("-followup") if study.endswith("-followup") else None
        report = reports.draft(study, prior, ClinicalInputs(steroid_dose="stable", clinical_status="stable"))
        for finding in report.findings:
            report = reports.review(study, finding.key, "approved", "bench")
        kind = "follow-up study" if prior else "baseline study"
        report = reports.sign(study, "bench", f"Brain tumor, {kind}.", "Discuss at the tumor board.")
        signed[study] = report.to_dict()
        log(f"signed the report of {study}")
    return signed


def cohort(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    studies = work / "studies"
    make_cohort(studies, args.baselines, args.follow_ups, args.seed)
    store = StudyFolderDatastore(studies)
    checkpoint = load_checkpoint(BUNDLED)
    if args.labels == "model":
        segment_all(store, TumorSegmenter([BUNDLED]))
    else:  # the generator's reference label as each study's final label (an annotator's, perfect)
        for study in store.list_images():
            if FINAL not in store.label_tags(study):
                store.add_label(study, str(studies / study / f"{study}-seg.nii.gz"), FINAL, {"user": "bench"})
    report_store = ReportStore(work / "state" / "reports")
    reports = ReportService(store, report_store)
    signed = sign_reports(store, reports)
    search = SearchService(store, report_store, lambda: checkpoint, work / "state" / "search")
    started = time.perf_counter()
    queued = search.reconcile()
    search.run_pending()
    index_s = time.perf_counter() - started
    ids = store.list_images()
    metas = {s: json.loads((studies / s / f"{s}-meta.json").read_text()) for s in ids}
    region = {s: region_of(m) for s, m in metas.items()}
    kind = {s: type_of(m) for s, m in metas.items()}
    descriptors = {s: search.index.features(s).descriptors for s in ids}  # type: ignore[union-attr]
    volume = {s: math.log1p(d.volumes_ml["WT"]) for s, d in descriptors.items()}
    rng = np.random.default_rng(args.seed)
    k_all = min(100, len(ids) - 1)
    rankings: dict[str, dict[str, list[str]]] = {way: {} for way in (*WAYS, "random", "volume")}
    flags: dict[str, bool] = {}
    latencies: list[float] = []
    for s in ids:
        for way in WAYS:
            t0 = time.perf_counter()
            answer = search.similar(s, k_all, way)
            latencies.append(time.perf_counter() - t0)
            rankings[way][s] = [h["study"] for h in answer["hits"]]
            if way == "both" and s.endswith("-followup"):
                baseline = s.removesuffix("-followup")
                flags[s] = any(h["same_patient"] for h in answer["hits"] if h["study"] == baseline)
        others = [o for o in ids if o != s]
        rankings["random"][s] = list(rng.permutation(others))
        rankings["volume"][s] = sorted(others, key=lambda o: abs(volume[o] - volume[s]))
    queries = [s for s in ids if not s.endswith("-followup")]  # precision over baselines: no twin in the set
    result: dict[str, Any] = {"studies": len(ids), "baselines": args.baselines, "follow_ups": args.follow_ups,
                              "labels": args.labels,
                              "seed": args.seed, "indexed": queued, "index_s": round(index_s, 1),
                              "regions": sorted(set(region.values())), "problems": search.problems,
                              "similar_latency_ms": {"p50": percentile_ms(latencies, 50),
                                                     "p95": percentile_ms(latencies, 95)}}
    for way, ranked in rankings.items():
        pairs = [s for s in ids if s.endswith("-followup")]
        ranks = []
        for s in pairs:
            order = ranked[s]
            baseline = s.removesuffix("-followup")
            ranks.append(order.index(baseline) + 1 if baseline in order else len(ids))
        result[way] = {
            "precision_at_5_region": round(float(np.mean([precision_at(ranked[s], region, s) for s in queries])), 3),
            "precision_at_5_type": round(float(np.mean([precision_at(ranked[s], kind, s) for s in queries])), 3),
            "baseline_rank_1": round(float(np.mean([r == 1 for r in ranks])), 3),
            "baseline_rank_median": float(np.median(ranks)),
            "baseline_ranks": ranks,
        }
    result["same_patient_flag_on_baseline"] = round(float(np.mean(list(flags.values()))), 3) if flags else None
    result["text"] = text_precision(search, signed)
    search.index.close()
    return result


def text_precision(search: SearchService, signed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = {}
    for query, what in TEXT_QUERIES:
        truth = {s: relevant(r, what) for s, r in signed.items()}
        row: dict[str, Any] = {"relevant": sum(truth.values())}
        for mode in ("keyword", "semantic", "hybrid"):
            hits = search.text(query, 5, mode)["hits"]
            row[mode] = round(sum(truth[h["study"]] for h in hits) / 5, 2)
        rows[query] = row
    summary = {mode: round(float(np.mean([r[mode] for r in rows.values()])), 3)
               for mode in ("keyword", "semantic", "hybrid")}
    return {"queries": rows, "mean_precision_at_5": summary}


# --------------------------------------------------------------------------- real cases
def real(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    studies = work / "studies"
    cases = labelled_cases(args.cases)
    studies.mkdir(parents=True, exist_ok=True)
    for case in cases:  # the images only: the reference label is not the study's label here
        target = studies / case["case_id"]
        if not target.exists():
            target.mkdir()
            for f in Path(case["image"]).iterdir():
                if "-seg" not in f.name:
                    shutil.copy(f, target / f.name)
    store = StudyFolderDatastore(studies)
    checkpoint = load_checkpoint(BUNDLED)
    segment_all(store, TumorSegmenter([BUNDLED]))
    search = SearchService(store, ReportStore(work / "state" / "reports"), lambda: checkpoint,
                           work / "state" / "search")
    search.reconcile()
    search.run_pending()
    ids = store.list_images()
    reference: dict[str, np.ndarray] = {}
    for case in cases:  # descriptors of the reference label, the same way
        from lib.report.build import brain_of
        from lib.report.measure import measure
        from lib.search.descriptors import describe, occupancy_map
        from lib.transforms import find_case_files

        label_file = case["label"]
        fixed = work / f"{case['case_id']}-reference.nii.gz"
        import SimpleITK as sitk

        sitk.WriteImage(read_label(label_file), str(fixed))
        data = checkpoint.preprocessing(with_label=True)({"image": case["image"], "label": str(fixed)})
        t1c = sitk.ReadImage(str(find_case_files(Path(case["image"]), case["case_id"]).path_of("t1c")),
                             sitk.sitkFloat32)
        measured = measure(sitk.ReadImage(str(fixed), sitk.sitkUInt8), brain_of(t1c))
        d = describe(measured, occupancy_map(np.asarray(data["label"])[0], np.asarray(data["brain_mask"])[0]))
        reference[case["case_id"]] = tumor_vector(d)
    rng = np.random.default_rng(0)
    per_way: dict[str, dict[str, list[float]]] = {w: {"spearman": [], "ndcg_at_3": []}
                                                  for w in (*WAYS, "random")}
    for s in ids:
        others = [o for o in ids if o != s]
        truth_similarity = np.array([1.0 / (1.0 + float(np.linalg.norm(reference[o] - reference[s])))
                                     for o in others])
        for way in (*WAYS, "random"):
            if way == "random":
                scores = rng.random(len(others))
            else:
                hits = {h["study"]: h["score"] for h in search.similar(s, len(others), way)["hits"]}
                scores = np.array([hits.get(o, 0.0) for o in others])
            order = np.argsort(-scores)
            per_way[way]["spearman"].append(spearman(scores, truth_similarity))
            per_way[way]["ndcg_at_3"].append(ndcg(truth_similarity[order], truth_similarity, 3))
    result: dict[str, Any] = {"cases": ids, "problems": search.problems}
    for way, values in per_way.items():
        result[way] = {name: round(float(np.mean(v)), 3) for name, v in values.items()}
    search.index.close()
    return result


# --------------------------------------------------------------------------- speed
def _generated_rows(n: int, image_dim: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    centres = rng.normal(size=(64, image_dim)).astype(np.float32)
    rows = []
    for i in range(n):
        image = centres[i % 64] + 0.7 * rng.normal(size=image_dim).astype(np.float32)
        image /= np.linalg.norm(image)
        occupancy = rng.dirichlet(np.full(64, 0.05))
        wt = float(rng.lognormal(3.5, 0.9))
        d = TumorDescriptors({"WT": wt, "TC": wt * 0.4, "ET": wt * 0.2, "NCR": wt * 0.2, "ED": wt * 0.6},
                             {"WT": wt / 14.0}, 1400.0, 0.5, 0.5, int(rng.integers(1, 4)), 1,
                             "right" if i % 2 else "left", bool(i % 3 == 0), tuple(float(v) for v in occupancy))
        rows.append({"study": f"GEN-{i:06d}", "patient_id": f"P{i // 3:06d}", "study_date": "20260101",
                     "label_tag": "final", "label_version": 1, "model_version": "bench",
                     "wt_ml": wt, "tc_ml": wt * 0.4, "et_ml": wt * 0.2, "ncr_ml": wt * 0.2, "ed_ml": wt * 0.6,
                     "wt_percent": wt / 14.0, "enhancing_fraction": 0.5, "necrotic_fraction": 0.5,
                     "lesions": d.lesion_count, "measurable_lesions": 1, "hemisphere": d.hemisphere,
                     "crosses_midline": int(bool(d.crosses_midline)), "report_version": 1,
                     "impression": "Brain tumor.", "descriptors": json.dumps(d.to_dict()),
                     "image": image.tobytes(), "tumor": tumor_vector(d).tobytes(), "updated": 0.0})
    return rows


def speed(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    rng = np.random.default_rng(1)
    n, image_dim = args.studies, args.image_dim
    if args.reuse:  # the index a previous run built: measure the searches again
        return {**measure_speed(SearchIndex(work / "index", image_model="bench"), n, args.queries, rng,
                                None), "build_s": None, "text_build_s": None, "image_dim": image_dim}
    shutil.rmtree(work, ignore_errors=True)
    index = SearchIndex(work / "index", image_model="bench")
    started = time.perf_counter()
    index.bulk_put_vectors(_generated_rows(n, image_dim, rng))
    build_s = time.perf_counter() - started
    print(f"{n} studies indexed in {build_s:.0f} s", flush=True)
    # report text: one FTS row and one sentence (with a random unit vector) per study
    words = ["right", "left", "frontal", "parietal", "temporal", "occipital", "glioma", "metastasis", "edema",
             "enhancing", "necrotic", "midline", "lesion", "resection", "progression", "stable"]
    started = time.perf_counter()
    with index._transaction() as db:  # the benchmark fills the text tables directly, in bulk
        sentence_vectors = rng.normal(size=(n, SENTENCE_DIM)).astype(np.float32)
        sentence_vectors /= np.linalg.norm(sentence_vectors, axis=1, keepdims=True)
        for row in range(1, n + 1):
            text = " ".join(rng.choice(words, 6)) + "."
            db.execute("INSERT INTO report_fts (rowid, text) VALUES (?, ?)", (row, text))
            cursor = db.execute("INSERT INTO sentences (study_id, section, text, vector) VALUES (?, ?, ?, ?)",
                                (row, "impression", text, sentence_vectors[row - 1].tobytes()))
            db.execute("INSERT INTO sentence_fts (rowid, text) VALUES (?, ?)", (cursor.lastrowid, text))
    index._vectors["text"] = index._build("text")
    text_build_s = time.perf_counter() - started
    print(f"{n} reports indexed in {text_build_s:.0f} s", flush=True)
    index.save()
    return {**measure_speed(index, n, args.queries, rng, sentence_vectors), "build_s": round(build_s, 1),
            "text_build_s": round(text_build_s, 1), "image_dim": image_dim}


def measure_speed(index: SearchIndex, n: int, queries: int, rng: np.random.Generator,
                  sentence_vectors: np.ndarray | None) -> dict[str, Any]:
    """Latencies of the searches on a filled index, and its size."""
    work = index.folder.parent
    if sentence_vectors is None:
        sentence_vectors = rng.normal(size=(1000, SENTENCE_DIM)).astype(np.float32)
        sentence_vectors /= np.linalg.norm(sentence_vectors, axis=1, keepdims=True)
    words = ["right", "left", "frontal", "parietal", "temporal", "occipital", "glioma", "metastasis", "edema",
             "enhancing", "necrotic", "midline", "lesion", "resection", "progression", "stable"]
    sizes = {p.name: p.stat().st_size for p in (work / "index").iterdir()}
    service_like = {"image": [], "tumor": [], "both": [], "filtered": [], "keyword": [], "semantic": []}
    filters = parse_filters("wt_ml>=50&hemisphere=right&crosses_midline=true", frozenset())
    for _ in range(queries):
        row = int(rng.integers(1, n + 1))
        for way in ("image", "tumor"):
            query = index.vector(way, row)
            assert query is not None
            t0 = time.perf_counter()
            index.rows([nb.row for nb in index.nearest(way, query, 10, None, {row})])
            service_like[way].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        image_query, tumor_query = index.vector("image", row), index.vector("tumor", row)
        assert image_query is not None and tumor_query is not None
        a = index.nearest("image", image_query, 20, None, {row})
        b = index.nearest("tumor", tumor_query, 20, None, {row})
        rows = list({nb.row for nb in a + b})
        index.similarities("image", image_query, rows)
        index.similarities("tumor", tumor_query, rows)
        index.rows(rows[:10])
        service_like["both"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        allowed = index.matching(filters)
        index.nearest("image", image_query, 10, allowed, {row})
        service_like["filtered"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.keyword(list(rng.choice(words, 2, replace=False)), 10, None)
        service_like["keyword"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.semantic(sentence_vectors[int(rng.integers(0, len(sentence_vectors)))], 10, None)
        service_like["semantic"].append(time.perf_counter() - t0)
    result = {"studies": n, "queries": queries, "size_bytes": sizes,
              "size_mb_total": round(sum(sizes.values()) / 1e6, 1),
              "latency_ms": {k: {"p50": percentile_ms(v, 50), "p95": percentile_ms(v, 95)}
                             for k, v in service_like.items()}}
    index.close()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    c = sub.add_parser("cohort")
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--baselines", type=int, default=60)
    c.add_argument("--follow-ups", type=int, default=30)
    c.add_argument("--seed", type=int, default=500)
    c.add_argument("--labels", choices=("model", "reference"), default="model",
                   help="what each study is indexed from: the bundled model's segmentation (default) or the "
                        "generator's reference label as a final label")
    r = sub.add_parser("real")
    r.add_argument("--cases", type=Path, required=True)
    r.add_argument("--work", type=Path, required=True)
    s = sub.add_parser("speed")
    s.add_argument("--studies", type=int, default=100_000)
    s.add_argument("--image-dim", type=int, default=288)
    s.add_argument("--queries", type=int, default=300)
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--reuse", action="store_true", help="measure the searches on the index a previous run built")
    args = ap.parse_args()
    result = {"cohort": cohort, "real": real, "speed": speed}[args.part](args)
    save(args.part, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
