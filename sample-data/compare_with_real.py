"""Compare generated cases with the real cases in ../shared/real-cases (appearance check).

Brings every case through the project's preprocessing (1 mm RAS, brain mask, no
intensity normalisation), prints per-sequence intensity percentiles relative to the
brain median side by side, and writes a PNG montage: one row per case (real first),
one column per sequence, the axial slice through the tumor (or the brightest FLAIR
region for unlabeled real cases). The generator never reads the real cases; only
this script does.

    .venv/bin/python sample-data/compare_with_real.py --generated sample-data/generated \
        --real ../shared/real-cases --png docs/images/synthetic-vs-real.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lib.brats import SEQUENCES
from lib.transforms import build_preprocessing

PERCENTILES = (1, 25, 75, 99)


def relative_percentiles(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Percentiles ``PERCENTILES`` of brain voxels divided by the brain median (scale-free)."""
    values = image[mask]
    return np.percentile(values, PERCENTILES) / np.median(values)


def tumor_slice(case: dict) -> int:
    """Axial index through the tumor: label centroid, else the peak of FLAIR-bright voxels."""
    if "label" in case and case["label"].any():
        return int(np.argwhere(case["label"][0] > 0)[:, 2].mean())
    flair, mask = case["image"][3], case["brain_mask"][0] > 0
    bright = (flair > np.percentile(flair[mask], 98)) & mask
    return int(np.argmax(bright.sum((0, 1))))


def tile(image: np.ndarray, mask: np.ndarray, z: int, size: int = 180) -> Image.Image:
    """Axial slice ``z`` of an (X, Y, Z) RAS image as a radiological-view grey tile."""
    lo, hi = np.percentile(image[mask], (0.5, 99.5))
    sl = np.clip((image[:, :, z] - lo) / (hi - lo + 1e-6), 0, 1)
    # radiological view: patient's right on the left of the screen, anterior up
    pixels = (np.rot90(sl[::-1, :]) * 255).astype(np.uint8)[:, ::-1]
    return Image.fromarray(pixels).resize((size, int(size * pixels.shape[0] / pixels.shape[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--max-generated", type=int, default=4)
    args = parser.parse_args()

    pre = build_preprocessing(normalize=False, with_label="auto")
    real = sorted(p for p in args.real.iterdir() if p.is_dir())
    generated = sorted(p for p in args.generated.iterdir() if p.is_dir())[: args.max_generated]
    rows, stats = [], {}
    for path in real + generated:
        case = pre({"image": str(path)})
        mask = case["brain_mask"][0] > 0
        name = ("real " if path in real else "synthetic ") + path.name
        stats[name] = {s: relative_percentiles(case["image"][i], mask) for i, s in enumerate(SEQUENCES)}
        z = tumor_slice(case)
        rows.append((name, [tile(case["image"][i], mask, z) for i in range(len(SEQUENCES))]))

    print("brain-voxel percentiles " + "/".join(f"p{p}" for p in PERCENTILES) + " divided by the median")
    for seq in SEQUENCES:
        print(f"\n{seq}")
        for name, per_seq in stats.items():
            print(f"  {name:45s} " + "  ".join(f"{v:5.2f}" for v in per_seq[seq]))

    width, label_h = rows[0][1][0].width, 16
    height = max(t.height for _, tiles in rows for t in tiles)
    sheet = Image.new("L", (width * len(SEQUENCES), (height + label_h) * len(rows) + label_h), 0)
    draw = ImageDraw.Draw(sheet)
    for i, seq in enumerate(SEQUENCES):
        draw.text((i * width + 4, 2), seq, fill=255)
    for r, (name, tiles) in enumerate(rows):
        y = label_h + r * (height + label_h)
        draw.text((4, y + 2), name, fill=255)
        for i, t in enumerate(tiles):
            sheet.paste(t, (i * width, y + label_h))
    args.png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.png)
    print(f"\nmontage: {args.png}")


if __name__ == "__main__":
    main()
