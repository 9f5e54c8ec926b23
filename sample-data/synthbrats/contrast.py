"""Per-sequence tissue contrast: what each tissue looks like on t1n, t1c, t2w and t2f.

Intensities are relative to white matter (WM = 1) before the scanner model rescales
them. The realistic table follows clinical appearance (T1: WM > GM > CSF; T2: CSF
bright; FLAIR: CSF suppressed, edema bright; T1c: enhancing rim bright, necrosis dark,
vessels enhance). Domain randomisation (SynthSeg-style) replaces the table by random
intensities per class so a network cannot rely on one contrast.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lib.brats import SEQUENCES

from .grid import smooth_noise
from .tumor import EDEMA, ENHANCING, NECROSIS, SOLID

CLASSES = ("wm", "gm", "csf", "necrosis", "solid", "edema", "enhancing", "vessel")

#: Mean intensity per class relative to WM, and the relative spread of its per-case draw.
REALISTIC: dict[str, dict[str, tuple[float, float]]] = {
    "t1n": {"wm": (1.0, 0), "gm": (0.78, 0.05), "csf": (0.33, 0.25), "necrosis": (0.7, 0.2),
            "solid": (0.8, 0.1), "edema": (0.8, 0.06), "enhancing": (0.74, 0.1), "vessel": (0.7, 0.1)},
    "t1c": {"wm": (1.0, 0), "gm": (0.8, 0.05), "csf": (0.33, 0.25), "necrosis": (0.55, 0.25),
            "solid": (0.68, 0.1), "edema": (0.68, 0.06), "enhancing": (1.5, 0.15), "vessel": (1.9, 0.2)},
    "t2w": {"wm": (1.0, 0), "gm": (1.35, 0.08), "csf": (3.6, 0.15), "necrosis": (2.8, 0.15),
            "solid": (2.2, 0.15), "edema": (2.6, 0.15), "enhancing": (1.9, 0.15), "vessel": (0.6, 0.2)},
    "t2f": {"wm": (1.0, 0), "gm": (1.22, 0.06), "csf": (0.3, 0.3), "necrosis": (2.0, 0.2),
            "solid": (2.1, 0.15), "edema": (1.6, 0.15), "enhancing": (1.6, 0.15), "vessel": (0.8, 0.2)},
}


def draw_intensities(rng: np.random.Generator, randomised: bool) -> dict[str, dict[str, float]]:
    """Per-sequence, per-class mean intensities for one case (relative to WM = 1)."""
    table: dict[str, dict[str, float]] = {}
    for seq in SEQUENCES:
        if randomised:
            table[seq] = {c: float(rng.uniform(0.1, 3.0)) for c in CLASSES}
        else:
            table[seq] = {c: float(max(0.05, m * (1 + s * rng.standard_normal())))
                          for c, (m, s) in REALISTIC[seq].items()}
    if not randomised:
        # ET is defined by its enhancement: keep it clearly brighter than healthy tissue
        table["t1c"]["enhancing"] = max(table["t1c"]["enhancing"], 1.4 * max(table["t1c"]["wm"], table["t1c"]["gm"]))
        # the enhancing rim and enhancing vessels take up the same contrast agent dose
        table["t1c"]["vessel"] = table["t1c"]["enhancing"] * float(rng.uniform(0.85, 1.1))
    return table


def vessel_map(rng: np.random.Generator, tissues: dict[str, np.ndarray], spacing: float) -> np.ndarray:
    """Soft map (X, Y, Z) of thin tube-like vessels in sulcal CSF and along the cortex.

    Tubes are where the zero-surfaces of two independent smooth random fields cross
    (both fields near zero): a cheap way to draw branching curvilinear structures.
    """
    shape = tissues["wm"].shape
    a = smooth_noise(rng, shape, 4.0 / spacing)
    b = smooth_noise(rng, shape, 4.0 / spacing)
    width = 0.12 * spacing
    tubes = np.exp(-(a * a + b * b) / (2 * width * width))
    near_surface = ndimage.gaussian_filter(tissues["csf"] + 0.5 * tissues["gm"], 1.0 / spacing)
    return (tubes * np.clip(near_surface, 0, 1)).astype(np.float32)


def periventricular_caps(tissues: dict[str, np.ndarray], spacing: float) -> np.ndarray:
    """Soft map of white matter within ~4 mm of the ventricles (deep CSF): where FLAIR
    shows the periventricular hyperintensity that is common in older patients."""
    brain = sum(tissues.values()) > 0.5
    depth = ndimage.distance_transform_edt(brain) * spacing
    ventricles = (tissues["csf"] > 0.5) & (depth > 12.0)
    dist = ndimage.distance_transform_edt(~ventricles) * spacing
    return (np.exp(-dist / 3.0) * tissues["wm"] * (dist > 0)).astype(np.float32)


def render(tissues: dict[str, np.ndarray], compartments: np.ndarray, vessels: np.ndarray,
           caps: np.ndarray, table: dict[str, dict[str, float]], rng: np.random.Generator,
           spacing: float, caps_strength: float) -> dict[str, np.ndarray]:
    """Noise-free images (X, Y, Z) float32 per sequence, WM = 1, background 0.

    Healthy voxels mix tissue means by their probabilities (partial volume). Lesion
    compartments are softened by 0.7 voxel so their borders blend too; edema keeps
    30 % of the underlying tissue signal. Texture is a smooth multiplicative field,
    stronger inside lesions; the lesion texture is shared across sequences because it
    reflects the same tissue.
    """
    healthy_texture = smooth_noise(rng, compartments.shape, 2.0 / spacing)
    lesion_texture = smooth_noise(rng, compartments.shape, 2.5 / spacing)
    soft = {code: ndimage.gaussian_filter((compartments == code).astype(np.float32), 0.7)
            for code in (NECROSIS, SOLID, EDEMA, ENHANCING)}
    lesion_total = np.clip(sum(soft.values()), 0, 1)
    images = {}
    for seq in SEQUENCES:
        t = table[seq]
        healthy = t["wm"] * tissues["wm"] + t["gm"] * tissues["gm"] + t["csf"] * tissues["csf"]
        healthy = healthy * (1 + 0.04 * healthy_texture)
        if seq == "t2f":
            healthy = healthy + caps_strength * caps
        healthy = healthy + vessels * (t["vessel"] - healthy)
        lesion = (t["necrosis"] * soft[NECROSIS] + t["solid"] * soft[SOLID] + t["enhancing"] * soft[ENHANCING]
                  + soft[EDEMA] * (0.7 * t["edema"] + 0.3 * healthy))
        lesion = lesion * (1 + 0.12 * lesion_texture)
        images[seq] = np.clip(healthy * (1 - lesion_total) + lesion, 0, None).astype(np.float32)
    return images
