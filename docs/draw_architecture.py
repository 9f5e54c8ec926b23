"""Draw docs/images/architecture.png: how a study flows through BrainTumorLabel, each box with the
folder it lives in. Run by ``make docs-images``; matplotlib only.

    .venv/bin/python docs/draw_architecture.py [--out docs/images/architecture.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "images" / "architecture.png"

#: name -> (x, y, width, height, folder, colour); the canvas is 16 x 9.
BOXES = {
    "Slicer module": (0.3, 6.9, 3.0, 1.2, "slicer_extension/", "#d9e8fb"),
    "MONAI Label client, curl": (0.3, 5.3, 3.0, 1.0, "", "#d9e8fb"),
    "job workers (btl-worker)": (0.3, 0.3, 3.0, 1.2, "lib/jobs/ via RabbitMQ", "#eeeeee"),
    "HTTP edge": (4.1, 2.0, 3.0, 6.4, "lib/server/", "#fde2c8"),
    "MONAI Label app": (8.0, 7.2, 3.3, 1.2, "monailabel_app/main.py", "#e4f2d9"),
    "active learning": (8.0, 5.5, 3.3, 1.2, "lib/activelearning/", "#fff5c2"),
    "report": (8.0, 3.8, 3.3, 1.2, "lib/report/", "#fff5c2"),
    "case search": (8.0, 2.1, 3.3, 1.2, "lib/search/", "#fff5c2"),
    "datastore": (8.0, 0.3, 3.3, 1.2, "lib/datastore/", "#f3e1f5"),
    "training": (12.3, 7.2, 3.5, 1.2, "lib/trainers/", "#e4f2d9"),
    "preprocessing": (12.3, 5.5, 3.5, 1.0, "lib/transforms/", "#e4f2d9"),
    "model": (12.3, 4.1, 3.5, 1.0, "lib/model/, lib/infers/", "#e4f2d9"),
    "postprocessing": (12.3, 2.7, 3.5, 1.0, "lib/postprocessing/", "#e4f2d9"),
    "Orthanc PACS (DICOMweb)": (12.3, 0.3, 3.5, 1.2, "lib/pacs/", "#eeeeee"),
}
#: (from, to, label)
ARROWS = [
    ("Slicer module", "HTTP edge", "REST"),
    ("MONAI Label client, curl", "HTTP edge", ""),
    ("HTTP edge", "MONAI Label app", "infer, train"),
    ("HTTP edge", "active learning", "next sample"),
    ("HTTP edge", "report", "draft, sign"),
    ("HTTP edge", "case search", "search"),
    ("HTTP edge", "job workers (btl-worker)", "cohorts"),
    ("MONAI Label app", "training", ""),
    ("MONAI Label app", "preprocessing", ""),
    ("preprocessing", "model", ""),
    ("model", "postprocessing", ""),
    ("postprocessing", "datastore", "label version"),
    ("datastore", "Orthanc PACS (DICOMweb)", "SEG, PDF, SR"),
]
#: What the arrows do not say.
NOTES = [(9.65, 0.0, "every part reads studies and writes labels through the datastore contract"),
         (5.6, 1.75, "auth, roles, limits, audit, typed errors")]


def _centre(name: str) -> tuple[float, float]:
    x, y, w, h, *_ = BOXES[name]
    return x + w / 2, y + h / 2


def _edge_point(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre towards ``towards`` leaves the box."""
    x, y, w, h, *_ = BOXES[name]
    cx, cy = x + w / 2, y + h / 2
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min((w / 2) / abs(dx) if dx else float("inf"), (h / 2) / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def draw(out: Path) -> Path:
    figure, ax = plt.subplots(figsize=(16, 9))
    ax.set_xlim(0, 16)
    ax.set_ylim(-0.3, 9)
    ax.axis("off")
    for name, (x, y, w, h, folder, colour) in BOXES.items():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", facecolor=colour,
                                    edgecolor="#444444", linewidth=1.2))
        ax.text(x + w / 2, y + h / 2 + (0.18 if folder else 0), name, ha="center", va="center", fontsize=12,
                weight="bold")
        if folder:
            ax.text(x + w / 2, y + h / 2 - 0.25, folder, ha="center", va="center", fontsize=9.5, family="monospace",
                    color="#333333")
    for start, end, label in ARROWS:
        a, b = _edge_point(start, _centre(end)), _edge_point(end, _centre(start))
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, linewidth=1.3, color="#555555"))
        if label:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, label, ha="center", va="bottom", fontsize=9,
                    color="#1f4e79", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.85})
    for x, y, text in NOTES:
        ax.text(x, y, text, ha="center", va="center", fontsize=9, style="italic", color="#555555")
    ax.set_title("BrainTumorLabel: a study from the datastore to a label, a report and a trained model", fontsize=14)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    print(draw(ap.parse_args().out))


if __name__ == "__main__":
    main()
