"""One synthetic case from a seed: anatomy -> tumors -> contrast -> scanner; and its atomic write."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lib.brats import LABEL_NAMES, REFERENCE_SEQUENCE, SEQUENCES, label_filename, sequence_filename
from lib.transforms import Grid, image_from_xyz, resample_label

from . import anatomy, contrast, scanner, tumor
from .grid import WorkingGrid

STYLE_CHOICES = ("brats", "raw", "mixed")


@dataclass(frozen=True)
class GeneratorConfig:
    """``spacing``: working resolution in mm (1.0 for real data, 2.0 for fast tests);
    ``style``: ``brats``, ``raw`` or ``mixed`` (half each); ``domain_randomization``:
    probability that a case gets random per-tissue intensities; ``kind``: force a tumor
    kind (``glioblastoma``, ``low_grade``, ``metastasis``) or None for a random one;
    ``tumor_scale``: a follow-up scan of the same subject at the same site, its tumors grown
    (> 1) or shrunk (< 1) by that factor (its id ends in ``-followup``)."""

    spacing: float = 1.0
    style: str = "mixed"
    domain_randomization: float = 0.0
    kind: str | None = None
    tumor_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.style not in STYLE_CHOICES:
            raise ValueError(f"style must be one of {STYLE_CHOICES}, got '{self.style}'")
        if not 0.0 <= self.domain_randomization <= 1.0:
            raise ValueError("domain_randomization is a probability in [0, 1]")
        if self.kind is not None and self.kind not in tumor.KINDS:
            raise ValueError(f"kind must be one of {tumor.KINDS}, got '{self.kind}'")
        if not 0.1 <= self.tumor_scale <= 3.0:
            raise ValueError(f"tumor_scale must be in [0.1, 3], got {self.tumor_scale}")


@dataclass
class SyntheticCase:
    """A generated case. ``images``: int16 images per sequence, each on its own grid;
    ``label``: uint8 BraTS labels on the t1c grid; ``white_matter``: uint8 mask of
    healthy white matter on the t1c grid (for harmonization checks); ``meta``: every
    parameter drawn, JSON-serialisable."""

    case_id: str
    images: dict[str, sitk.Image]
    label: sitk.Image
    white_matter: sitk.Image
    meta: dict


def case_id_for(seed: int, index: int) -> str:
    return f"SynBraTS-{seed:05d}-{index:03d}"


def _streams(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the subject (anatomy, tumor, tissue contrast), the site
    choice and the site's random effects (bias fields, noise)."""
    subject, site, effects = np.random.SeedSequence([seed, index]).spawn(3)
    return np.random.default_rng(subject), np.random.default_rng(site), np.random.default_rng(effects)


def draw_case_site(seed: int, index: int, config: GeneratorConfig) -> scanner.Site:
    """The site a case gets by default (exposed so a test can swap in another one)."""
    _, site_rng, _ = _streams(seed, index)
    style = config.style if config.style != "mixed" else ("brats" if site_rng.random() < 0.5 else "raw")
    return scanner.draw_site(site_rng, style)


def generate_case(seed: int, index: int = 0, config: GeneratorConfig = GeneratorConfig(),
                  site: scanner.Site | None = None) -> SyntheticCase:
    """Generate case ``index`` of the set with ``seed`` (deterministic). Passing ``site``
    renders the same subject and tumor under another scanner/site."""
    rng, _, effects_rng = _streams(seed, index)
    site = site or draw_case_site(seed, index, config)
    grid = WorkingGrid(config.spacing)
    template = anatomy.load_template()
    deformation = anatomy.SpatialDeformation.random(rng, grid)

    step = max(1, round(4.0 / config.spacing))
    coarse_points = grid.world_points(step)
    coarse = anatomy.sample_tissues(template, deformation(coarse_points))
    specs = tumor.draw_tumor_specs(rng, coarse["wm"], sum(coarse.values()), coarse_points,
                                   config.spacing * step, config.kind)
    specs = [spec.scaled(config.tumor_scale) for spec in specs] if config.tumor_scale != 1.0 else specs

    points = grid.world_points()
    tissues = anatomy.sample_tissues(template, deformation(tumor.mass_effect(points, specs)))
    del points
    tissues = anatomy.carve_sulci(anatomy.individualise(tissues, rng, config.spacing), rng, config.spacing)
    brain = sum(tissues.values())
    compartments = tumor.paint_tumors(specs, tissues["wm"], tissues["csf"], brain, grid, rng)
    labels = tumor.compartments_to_labels(compartments)

    randomised = bool(rng.random() < config.domain_randomization)
    table = contrast.draw_intensities(rng, randomised)
    caps_strength = float(rng.uniform(0.15, 0.5)) if rng.random() < 0.35 else 0.0
    clean = contrast.render(tissues, compartments, contrast.vessel_map(rng, tissues, config.spacing),
                            contrast.periventricular_caps(tissues, config.spacing), table, rng,
                            config.spacing, caps_strength)
    white_matter = ((tissues["wm"] > 0.5) & (labels == 0)).astype(np.uint8)

    images, label_img, wm_img = _acquire_all(clean, brain, labels, white_matter, grid, site, effects_rng)
    case_id = case_id_for(seed, index) + ("-followup" if config.tumor_scale != 1.0 else "")
    voxel_ml = float(np.prod(label_img.GetSpacing())) / 1000.0
    label_arr = sitk.GetArrayViewFromImage(label_img)
    meta = {
        "case_id": case_id, "seed": seed, "index": index, "generator": asdict(config),
        "site": site.as_dict(), "domain_randomized": randomised, "intensities": table,
        "periventricular_flair": caps_strength,
        "deformation": {"matrix": deformation.matrix.tolist(), "translation": deformation.translation.tolist()},
        "tumors": [s.as_dict() for s in specs],
        "volumes_ml": {name: round(float((label_arr == v).sum()) * voxel_ml, 3) for v, name in LABEL_NAMES.items()},
        "note": "synthetic data: MNI152 2009a anatomy (nilearn), no patient data",
    }
    return SyntheticCase(case_id, images, label_img, wm_img, meta)


def _acquire_all(clean: dict[str, np.ndarray], brain: np.ndarray, labels: np.ndarray, white_matter: np.ndarray,
                 grid: WorkingGrid, site: scanner.Site, rng: np.random.Generator
                 ) -> tuple[dict[str, sitk.Image], sitk.Image, sitk.Image]:
    images: dict[str, sitk.Image] = {}
    if site.style == "brats":
        stored = scanner.stored_brats_grid(grid, site.orientation)
        flip = (slice(None, None, -1), slice(None, None, -1), slice(None)) if site.orientation == "LPS" \
            else (slice(None),) * 3
        for seq in SEQUENCES:
            acq = site.acquisitions[seq]
            img = scanner.apply_intensity_effects(clean[seq], acq, rng, grid.spacing)
            arr = scanner.finish(img, brain, acq, rng, (grid.spacing,) * 3)
            images[seq] = image_from_xyz(arr[flip], stored)
        return images, image_from_xyz(labels[flip], stored), image_from_xyz(white_matter[flip], stored)

    working = scanner.working_itk_grid(grid)
    brain_img = image_from_xyz(brain.astype(np.float32), working)
    idx = np.argwhere(brain > 0.5)
    box_ijk = np.stack([idx.min(0), idx.max(0)])
    box_lps = np.stack([brain_img.TransformContinuousIndexToPhysicalPoint([float(v) for v in b]) for b in box_ijk])
    box_lps = np.sort(box_lps, axis=0)
    centre = scanner.motion_centre_lps()
    grids: dict[str, Grid] = {}
    for seq in SEQUENCES:
        acq = site.acquisitions[seq]
        grids[seq] = scanner.acquisition_grid(acq, box_lps)
        img = scanner.apply_intensity_effects(clean[seq], acq, rng, grid.spacing)
        arr, weight = scanner.acquire(image_from_xyz(img, working), brain_img, grids[seq], acq,
                                      scanner.motion_transform(acq, centre))
        images[seq] = image_from_xyz(scanner.finish(arr, weight, acq, rng, grids[seq].spacing), grids[seq])
    ref = grids[REFERENCE_SEQUENCE]
    label_img = resample_label(image_from_xyz(labels, working), ref)
    wm_img = sitk.Resample(image_from_xyz(white_matter, working), ref.reference_image(), sitk.Transform(),
                           sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return images, label_img, wm_img


#: The date of every baseline scan's series of studies; a case's index adds days to it.
BASELINE_DATE = dt.date(2026, 1, 1)
#: How long after its baseline a follow-up is scanned.
FOLLOW_UP_DAYS = 91


def study_record(meta: dict) -> dict[str, str]:
    """Who and when a generated case is (``<case>-study.json``, what a study folder datastore
    reads): one synthetic patient per seed and index, so a follow-up is its baseline's patient,
    scanned ``FOLLOW_UP_DAYS`` later."""
    subject = f"{int(meta['seed']):05d}-{int(meta['index']):03d}"
    follow_up = float(meta["generator"]["tumor_scale"]) != 1.0
    date = BASELINE_DATE + dt.timedelta(days=int(meta["index"]) % 200 + (FOLLOW_UP_DAYS if follow_up else 0))
    return {"patient_id": f"SYN-{subject}", "patient_name": f"Synthetic^{subject}",
            "accession_number": f"A{subject.replace('-', '')}{'F' if follow_up else 'B'}",
            "study_date": date.strftime("%Y%m%d"),
            "description": "MR brain follow-up (synthetic)" if follow_up else "MR brain (synthetic)"}


def write_case(case: SyntheticCase, out_dir: str | Path) -> Path:
    """Write ``out_dir/<case>/`` in BraTS naming (+ ``<case>-meta.json`` and ``<case>-study.json``)
    atomically: files go to a hidden temporary folder that is renamed into place only when complete. Returns the folder.
    An existing complete case folder is left untouched (FileExistsError)."""
    out_dir = Path(out_dir)
    final = out_dir / case.case_id
    if final.exists():
        raise FileExistsError(f"case folder already exists, not overwritten: {final}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{case.case_id}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for seq in SEQUENCES:
            sitk.WriteImage(case.images[seq], str(tmp / sequence_filename(case.case_id, seq)), useCompression=True)
        sitk.WriteImage(sitk.Cast(case.label, sitk.sitkUInt8), str(tmp / label_filename(case.case_id)),
                        useCompression=True)
        (tmp / f"{case.case_id}-meta.json").write_text(json.dumps(case.meta, indent=1))
        (tmp / f"{case.case_id}-study.json").write_text(json.dumps(study_record(case.meta), indent=1))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def true_registration(case: SyntheticCase, sequence: str) -> sitk.Transform:
    """The rigid transform that maps t1c physical points (LPS mm) onto the same anatomy in
    ``sequence``: what a co-registration onto t1c should recover (identity in ``brats`` style)."""
    fields = case.meta["site"]["acquisitions"][sequence]
    acq = scanner.Acquisition(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    return scanner.motion_transform(acq, scanner.motion_centre_lps()).GetInverse()
