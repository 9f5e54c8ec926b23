"""Correction effort per model version, as a picture: from ``experiments/evaluate_model.py --effort``
reports (the reference label standing in for the annotator's final label), or from a server's
``GET /btl/effort`` answer saved as JSON (real corrections).

    .venv/bin/python experiments/correction_effort.py --report old=build/real_bundled.json \\
        --report new=build/real_cv.json --png experiments/results/correction_effort.png

Per model: median Dice and surface Dice (2 mm) of WT, TC, ET between its output and the final
label (higher is less work), and the median number of voxels that had to change (printed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REGIONS = ("WT", "TC", "ET")


def effort_rows(path: Path) -> list[dict[str, Any]]:
    """The effort rows of an evaluate_model report or a /btl/effort answer."""
    report = json.loads(path.read_text())
    if "rows" in report:  # /btl/effort
        return list(report["rows"])
    rows = []
    for case, metrics in report.get("cases", {}).items():
        effort = metrics.get("correction_effort")
        if effort is None:
            raise SystemExit(f"{path}: case {case} has no correction_effort (run evaluate_model.py --effort)")
        rows.append({**effort, "study": case})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="append", required=True, help="NAME=JSON, one per model version")
    ap.add_argument("--png", type=Path, required=True)
    args = ap.parse_args(argv)
    models = dict(item.split("=", 1) for item in args.report)
    summary: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        rows = effort_rows(Path(path))
        summary[name] = {f"dice_{r}": statistics.median(row["dice"][r] for row in rows) for r in REGIONS}
        summary[name].update({f"surface_dice_{r}": statistics.median(row["surface_dice"][r] for row in rows)
                              for r in REGIONS})
        summary[name]["voxels_changed"] = statistics.median(row["voxels_changed"] for row in rows)
        summary[name]["cases"] = len(rows)
    print(json.dumps(summary, indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    width = 0.8 / len(summary)
    for k, (name, values) in enumerate(summary.items()):
        for ax, metric in zip(axes, ("dice", "surface_dice"), strict=True):
            xs = [i + k * width for i in range(len(REGIONS))]
            ax.bar(xs, [values[f"{metric}_{r}"] for r in REGIONS], width,
                   label=f"{name} (n={int(values['cases'])})")
    for ax, title in zip(axes, ("median Dice, output vs final", "median surface Dice (2 mm)"), strict=True):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(REGIONS))], REGIONS)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle("Correction effort per model version (higher = less to correct)", fontsize=11)
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
