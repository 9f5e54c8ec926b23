"""Key images of a report: t1c and FLAIR in the three planes through the tumor, with the label
drawn over them, a legend, a scale bar and the RANO line pair of the target lesion.

Images are reoriented to RAS (no interpolation) and shown in the radiological convention
(patient's right on the left of an axial or coronal view, anterior up in axial, superior up in
coronal and sagittal); pixels keep their physical aspect ratio. Each plane goes through the
slice where the tumor (WT) is largest in that plane.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from lib.atomic import atomic_path  # noqa: E402
from lib.brats import ED, ET, NCR  # noqa: E402
from lib.transforms import array_xyz, reorient_to_ras  # noqa: E402

COLOURS = {NCR: (230, 40, 40), ED: (40, 200, 60), ET: (250, 220, 30)}
NAMES = {NCR: "NCR (necrotic / non-enhancing core)", ED: "ED (edema)", ET: "ET (enhancing)"}
PLANES = ("axial", "coronal", "sagittal")


def _view(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """A 2D view (rows, cols) of an (X, Y, Z) RAS volume in the radiological convention."""
    if plane == "axial":
        return np.rot90(volume[:, :, index])[:, ::-1]
    if plane == "coronal":
        return np.rot90(volume[:, index, :])[:, ::-1]
    return np.rot90(volume[index, :, :])


def _aspect(spacing: Sequence[float], plane: str) -> float:
    """Height/width of one pixel of a view."""
    x, y, z = spacing
    return {"axial": y / x, "coronal": z / x, "sagittal": z / y}[plane]


def largest_sections(label: np.ndarray) -> dict[str, int]:
    """Per plane, the RAS index of the slice with the most tumor (the middle slice without tumor)."""
    tumor = label > 0
    sections = {}
    for plane, axis in zip(PLANES, (2, 1, 0), strict=True):
        counts = tumor.sum(axis=tuple(a for a in range(3) if a != axis))
        sections[plane] = int(np.argmax(counts)) if counts.any() else label.shape[axis] // 2
    return sections


def key_images(t1c: sitk.Image, flair: sitk.Image, label: sitk.Image, out: Path,
               rano_lines: Sequence[tuple[tuple[float, float, float], tuple[float, float, float]]] = (),
               rano_caption: str = "") -> Path:
    """One PNG (``out``): rows t1c and FLAIR, columns axial, coronal, sagittal, label over each.
    ``rano_lines``: line segments (two LPS points, mm) drawn on the axial t1c view, e.g. the
    target lesion's longest diameter and its perpendicular."""
    flair = sitk.Resample(flair, t1c, sitk.Transform(), sitk.sitkLinear, 0.0)
    ras_t1c, ras_flair, ras_label = (reorient_to_ras(image) for image in (t1c, flair, label))
    volumes = {"T1 post-contrast": array_xyz(ras_t1c), "FLAIR": array_xyz(ras_flair)}
    labels = array_xyz(ras_label).astype(np.uint8)
    spacing = ras_t1c.GetSpacing()
    sections = largest_sections(labels)
    if rano_lines:  # the axial section of the measured lesion
        first = ras_t1c.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in rano_lines[0][0]))
        sections["axial"] = int(round(first[2]))
    figure, axes = plt.subplots(2, 3, figsize=(11, 7.6), facecolor="black")
    for row, (name, volume) in enumerate(volumes.items()):
        inside = volume[volume > 0]
        lo, hi = np.percentile(inside, (0.5, 99.5)) if inside.size else (0.0, 1.0)
        for column, plane in enumerate(PLANES):
            ax = axes[row, column]
            grey = np.clip((_view(volume, plane, sections[plane]) - lo) / (hi - lo + 1e-6), 0, 1)
            rgb = np.repeat(grey[..., None], 3, axis=2)
            view = _view(labels, plane, sections[plane])
            for value, colour in COLOURS.items():
                rgb[view == value] = 0.5 * rgb[view == value] + 0.5 * np.asarray(colour) / 255.0
            ax.imshow(rgb, aspect=_aspect(spacing, plane), interpolation="nearest")
            ax.set_title(f"{name}, {plane} {sections[plane]}", color="white", fontsize=9)
            ax.axis("off")
            _scale_bar(ax, rgb.shape, spacing, plane)
            if plane == "axial" and row == 0:
                _draw_lines(ax, ras_t1c, rano_lines, labels.shape)
    handles = [Patch(color=(c[0] / 255, c[1] / 255, c[2] / 255), label=NAMES[v]) for v, c in COLOURS.items()]
    if rano_lines:
        handles.append(Patch(color="cyan", label=rano_caption or "RANO diameters"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, labelcolor="white",
                  fontsize=9)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(out, suffix=".png") as tmp:  # owner-only, like every file with patient data
        figure.savefig(tmp, format="png", dpi=110, facecolor="black")
    plt.close(figure)
    return out


def _scale_bar(ax: plt.Axes, shape: tuple[int, ...], spacing: Sequence[float], plane: str, length_mm: float = 50.0
               ) -> None:
    """A 5 cm bar in the lower left corner (its length in pixels from the view's column spacing)."""
    column_mm = spacing[0] if plane in ("axial", "coronal") else spacing[1]
    pixels = length_mm / column_mm
    y = shape[0] * 0.95
    ax.plot([shape[1] * 0.05, shape[1] * 0.05 + pixels], [y, y], color="white", linewidth=2)
    ax.text(shape[1] * 0.05, y - shape[0] * 0.02, f"{length_mm / 10:g} cm", color="white", fontsize=7)


def _draw_lines(ax: plt.Axes, ras: sitk.Image, lines: Sequence[tuple[Sequence[float], Sequence[float]]],
                shape: tuple[int, ...]) -> None:
    """Segments given in LPS mm, drawn on the axial view (RAS index -> view coordinates)."""
    for start, end in lines:
        points = [ras.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in p)) for p in (start, end)]
        # the axial view shows voxel (x, y) at column X-1-x (patient's right on the left), row Y-1-y (anterior up)
        columns = [shape[0] - 1 - p[0] for p in points]
        rows = [shape[1] - 1 - p[1] for p in points]
        ax.plot(columns, rows, color="cyan", linewidth=1.6)
