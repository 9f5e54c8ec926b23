"""End-to-end time and peak memory for one case, next to MONAI's reference BraTS pipeline.

Both pipelines segment the same four-sequence case (load, preprocess, infer, postprocess,
save), each in a fresh process so peak memory is its own:

- ours: ``lib.infers.pipeline.TumorSegmenter`` with the bundled checkpoint (or ``--checkpoint``),
  the code path the server runs (validation, rigid co-registration where needed, brain crop,
  resampling to the model's working resolution, N4 when the model was trained with it, Nyúl +
  z-score, SegResNet, bfloat16 on CPU / float16 on GPU, the voxel classifier's features and trees
  when the checkpoint has one, postprocessing, label restored onto the t1c grid); the median of
  ``--repeats`` requests per stage;
- reference: the configuration of the MONAI model-zoo bundle ``brats_mri_segmentation``
  (LoadImage, RAS, 1 mm spacing, channel-wise non-zero normalisation, SegResNet
  init_filters 16 blocks 1,2,2,4, 240x240x160 window, overlap 0.5, float32, sigmoid > 0.5).
  Its trained weights cannot be downloaded here, so it runs with random weights: the same
  arithmetic, so the same time and memory, not the same masks.

    .venv/bin/python bench/end_to_end.py --out bench/results/end_to_end.json

writes the JSON and a Markdown table next to it (``.md``) and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import cpu_model, provenance  # noqa: E402

from lib.model.checkpoint import read_checkpoint_record  # noqa: E402

STAGES = ("load_preprocess", "infer", "postprocess", "save")
BUNDLED = REPO / "monailabel_app" / "model" / "brats_segresnet.pt"


def _peak_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process image; ru_maxrss would
    also carry the peak of the parent that forked it (Linux keeps it across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(case: Path, out: Path, checkpoint: Path, repeats: int) -> dict:
    import SimpleITK as sitk

    from lib.infers.pipeline import TumorSegmenter

    segmenter = TumorSegmenter([checkpoint])
    model = segmenter.checkpoint()  # loading the model is not part of a request
    runs = []
    for _ in range(repeats):
        result = segmenter.segment(str(case))
        t = time.perf_counter()
        sitk.WriteImage(result.label, str(out), useCompression=True)
        runs.append({"load_preprocess": result.seconds["preprocess"], "infer": result.seconds["infer"],
                     "postprocess": result.seconds["postprocess"], "save": time.perf_counter() - t})
    times = {stage: statistics.median(run[stage] for run in runs) for stage in STAGES}
    return {"times_s": times, "peak_rss_mb": {"total": _peak_mb()}, "repeats": repeats,
            "model": f"{model.version}: {model.description}{', N4' if model.n4 else ''}, "
                     f"window {list(model.roi_size)}"}


def run_reference(case: Path, out: Path) -> dict:
    import torch
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import SegResNet
    from monai.transforms import (
        Activations,
        AsDiscrete,
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        SaveImage,
        Spacingd,
    )

    files = [str(next(case.glob(f"*-{s}.nii.gz"))) for s in ("t1c", "t1n", "t2f", "t2w")]
    network = SegResNet(blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), init_filters=16, in_channels=4,
                        out_channels=3, dropout_prob=0.2).eval()
    times, peaks = {}, {}
    t = time.perf_counter()
    pre = Compose([LoadImaged("image"), EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
                   Spacingd("image", pixdim=(1.0, 1.0, 1.0), mode="bilinear"),
                   NormalizeIntensityd("image", nonzero=True, channel_wise=True)])
    data = pre({"image": files})
    times["load_preprocess"], peaks["load_preprocess"] = time.perf_counter() - t, _peak_mb()
    t = time.perf_counter()
    with torch.no_grad():
        logits = SlidingWindowInferer(roi_size=(240, 240, 160), sw_batch_size=1, overlap=0.5)(
            data["image"][None], network)
    times["infer"], peaks["infer"] = time.perf_counter() - t, _peak_mb()
    t = time.perf_counter()
    mask = Compose([Activations(sigmoid=True), AsDiscrete(threshold=0.5)])(logits[0])
    times["postprocess"], peaks["postprocess"] = time.perf_counter() - t, _peak_mb()
    t = time.perf_counter()
    SaveImage(output_dir=str(out.parent), output_postfix="ref", separate_folder=False, print_log=False)(
        mask, meta_data=data["image"].meta)
    times["save"], peaks["save"] = time.perf_counter() - t, _peak_mb()
    return {"times_s": times, "peak_rss_mb": peaks,
            "model": "SegResNet init_filters 16 (random weights), window [240, 240, 160]"}


def _worker(name: str, case: Path, checkpoint: Path, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "label.nii.gz"
        result = run_ours(case, out, checkpoint, repeats) if name == "ours" else run_reference(case, out)
    print(json.dumps(result))


def _case(seed: int, folder: Path) -> Path:
    from synthbrats import GeneratorConfig, generate_case, write_case

    return write_case(generate_case(seed, 0, GeneratorConfig(style="brats", kind="glioblastoma")), folder)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, help="case folder in BraTS naming (default: a generated one)")
    ap.add_argument("--seed", type=int, default=9700)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "end_to_end.json")
    ap.add_argument("--checkpoint", type=Path, default=BUNDLED, help="our model (default: the bundled one)")
    ap.add_argument("--repeats", type=int, default=3, help="requests of ours; each stage's median is reported")
    ap.add_argument("--worker", choices=("ours", "reference"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.case, args.checkpoint, args.repeats)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        case = args.case or _case(args.seed, Path(tmp))
        results = {}
        for name in ("ours", "reference"):
            proc = subprocess.run([sys.executable, __file__, "--worker", name, "--case", str(case),
                                   "--checkpoint", str(args.checkpoint), "--repeats", str(args.repeats)],
                                  capture_output=True, text=True, check=True)
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    import torch

    from lib.model.predict import cpu_has_native_bf16

    ours, ref = (sum(results[n]["times_s"].values()) for n in ("ours", "reference"))
    peak = {n: max(results[n]["peak_rss_mb"].values()) for n in results}
    report = {"provenance": provenance(args.checkpoint, read_checkpoint_record(args.checkpoint)[0]),
              "case": str(args.case or f"generated seed {args.seed} (1 mm, 240x240x155)"),
              "machine": f"{cpu_model()}, {torch.get_num_threads()} threads, "
                         f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
                         f"native bfloat16: {'yes' if cpu_has_native_bf16() else 'no'}",
              "results": results, "total_s": {"ours": ours, "reference": ref},
              "peak_rss_mb": peak, "time_ratio_reference_over_ours": ref / ours,
              "memory_ratio_reference_over_ours": peak["reference"] / peak["ours"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    lines = ["| stage | ours (s) | reference (s) |", "|---|---:|---:|"]
    for stage in STAGES:
        lines.append(f"| {stage} | {results['ours']['times_s'][stage]:.2f} | "
                     f"{results['reference']['times_s'][stage]:.2f} |")
    lines += [f"| **total** | **{ours:.2f}** | **{ref:.2f}** |",
              f"| peak RSS (MB) | {peak['ours']:.0f} | {peak['reference']:.0f} |", "",
              f"Reference / ours: time x{ref / ours:.2f}, peak memory x{peak['reference'] / peak['ours']:.2f} "
              f"({report['machine']}).",
              f"Ours: {results['ours']['model']}. Reference: {results['reference']['model']}."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
