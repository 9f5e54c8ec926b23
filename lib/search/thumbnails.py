"""A search hit's thumbnail: the axial t1c slice through the tumor with the label's outline.

The slice is the one with the most whole-tumor voxels (the middle slice without tumor), shown
in the radiological convention (the patient's right on the image's left, anterior up), the t1c
windowed to its 1st-99th brain percentiles, each label's outline in its colour (NCR red, ED
yellow, ET green, as in the report's key images). Written once per label version, as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from lib.atomic import atomic_path
from lib.brats import ED, ET, NCR

#: The thumbnail's width and height (pixels).
SIZE_PX = 160
COLOURS = {NCR: (230, 60, 60), ED: (240, 220, 60), ET: (60, 220, 90)}


def _radiological(image: sitk.Image) -> np.ndarray:
    """(Z, Y, X) array with x towards the patient's left and y posterior (LPS)."""
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))


def render(t1c: sitk.Image, label: sitk.Image) -> Image.Image:
    """The thumbnail of a label (on the t1c grid) over its t1c."""
    values = _radiological(t1c).astype(np.float32)
    labels = _radiological(label)
    per_slice = (labels > 0).reshape(labels.shape[0], -1).sum(axis=1)
    z = int(np.argmax(per_slice)) if per_slice.any() else labels.shape[0] // 2
    brain = values[values > 0]
    low, high = (np.percentile(brain, (1, 99)) if brain.size else (0.0, 1.0))
    grey = np.clip((values[z] - low) / max(float(high - low), 1e-6), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    for value, colour in COLOURS.items():
        mask = labels[z] == value
        outline = mask & ~ndimage.binary_erosion(mask)
        rgb[outline] = colour
    spacing = sitk.DICOMOrient(t1c, "LPS").GetSpacing()
    height_mm, width_mm = rgb.shape[0] * spacing[1], rgb.shape[1] * spacing[0]
    scale = SIZE_PX / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    picture = Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (SIZE_PX, SIZE_PX))
    canvas.paste(picture, ((SIZE_PX - size[0]) // 2, (SIZE_PX - size[1]) // 2))
    return canvas


def write_thumbnail(t1c_path: Path, label_path: Path, out: Path) -> Path:
    """Render and write ``out`` (PNG) atomically; returns it."""
    picture = render(sitk.ReadImage(str(t1c_path), sitk.sitkFloat32), sitk.ReadImage(str(label_path), sitk.sitkUInt8))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".png") as tmp:
        picture.save(tmp, format="PNG")
    return out
