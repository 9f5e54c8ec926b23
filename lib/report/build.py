"""Drafting a report: a study's label measured, compared with a prior study of the patient, key
images drawn, and the software's statements written as findings for review."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lib.brats import REFERENCE_SEQUENCE
from lib.transforms import find_case_files
from lib.transforms.brainmask import brain_mask

from .document import Finding, Report
from .images import key_images
from .measure import Measurements, measure
from .response import ClinicalInputs, Response, assess, match_lesions, prior_on_current_grid


@dataclass(frozen=True)
class StudyInputs:
    """One study to report on: its id, its case (a folder in BraTS naming or the four files the
    preprocessing reads), the label measured (a NIfTI on its t1c grid) and which label version
    that is (``{"tag", "version"}``), and header lines for the report (patient, study date...)."""

    study: str
    case: Any
    label: Path
    label_ref: dict[str, Any]
    header: dict[str, str] = field(default_factory=dict)

    def images(self) -> tuple[sitk.Image, sitk.Image]:
        """The t1c and FLAIR images."""
        files = find_case_files(self.case, self.study)
        return (sitk.ReadImage(str(files.path_of(REFERENCE_SEQUENCE)), sitk.sitkFloat32),
                sitk.ReadImage(str(files.path_of("t2f")), sitk.sitkFloat32))


def brain_of(t1c: sitk.Image) -> sitk.Image:
    """The brain on the t1c grid: non-zero voxels of skull-stripped data, else a head mask."""
    values = sitk.GetArrayFromImage(t1c)
    mask, _ = brain_mask(values[None], reference_channel=0)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(t1c)
    return image


def draft_report(current: StudyInputs, prior: StudyInputs | None, *, model_version: str | None,
                 clinical: ClinicalInputs, images_path: Path) -> Report:
    """A draft report of ``current`` (compared with ``prior`` when given); the key images are
    written to ``images_path``."""
    t1c, flair = current.images()
    label = sitk.ReadImage(str(current.label), sitk.sitkUInt8)
    measured = measure(label, brain_of(t1c))
    response = None
    if prior is not None:
        prior_t1c, _ = prior.images()
        prior_label = sitk.ReadImage(str(prior.label), sitk.sitkUInt8)
        prior_measured = measure(prior_label, brain_of(prior_t1c))
        on_current = prior_on_current_grid(prior_label, prior_t1c, t1c)
        response = assess(measured, prior_measured, matches=match_lesions(measured, prior_measured, on_current),
                          clinical=clinical)
    lines, caption = [], ""
    if measured.targets:
        target = measured.targets[0].bidimensional
        lines = [(target.longest.start_lps_mm, target.longest.end_lps_mm),
                 (target.perpendicular.start_lps_mm, target.perpendicular.end_lps_mm)]
        caption = f"RANO: {target.longest.length_mm:.0f} x {target.perpendicular.length_mm:.0f} mm"
    key_images(t1c, flair, label, images_path, lines, caption)
    return Report(study=current.study, label=current.label_ref, model_version=model_version,
                  measurements=measured.to_dict(), findings=findings_for(measured, response),
                  header=current.header,
                  prior=None if prior is None else {"study": prior.study, "label": prior.label_ref},
                  response=None if response is None else response.to_dict(), clinical=clinical.to_dict())


def findings_for(measured: Measurements, response: Response | None) -> tuple[Finding, ...]:
    """The software's statements, one finding each, for a clinician to review."""
    v = measured.volumes_ml
    findings = [Finding("volumes", f"Whole tumor {v['WT']:.1f} mL (edema {v['ED']:.1f} mL, necrotic / non-enhancing "
                                   f"core {v['NCR']:.1f} mL, enhancing tumor {v['ET']:.1f} mL); tumor core "
                                   f"{v['TC']:.1f} mL"
                                   + (f", {measured.percent_of_brain['WT']:.1f} % of the brain volume"
                                      if measured.percent_of_brain else "") + ".")]
    count = len(measured.lesions)
    findings.append(Finding("lesions", "No tumor core." if count == 0 else "A single lesion." if count == 1
                            else f"{count} separate lesions (tumor core components of 0.1 mL or more)."))
    if not measured.enhancing_lesions:
        rano = "No enhancing tumor."
    elif measured.targets:
        parts = [f"{t.bidimensional.longest.length_mm:.0f} x {t.bidimensional.perpendicular.length_mm:.0f} mm "
                 f"({t.bidimensional.product_mm2:.0f} mm²)" for t in measured.targets]
        rano = (f"{len(measured.targets)} measurable enhancing lesion(s) as RANO 2.0 targets: {'; '.join(parts)}; "
                f"sum of products {measured.spd_mm2:.0f} mm².")
    else:
        largest = measured.enhancing_lesions[0].bidimensional
        rano = (f"Enhancing tumor, not measurable by RANO 2.0 (largest {largest.longest.length_mm:.0f} x "
                f"{largest.perpendicular.length_mm:.0f} mm: "
                f"{measured.enhancing_lesions[0].not_measurable_because}).")
    findings.append(Finding("rano", rano))
    if measured.hemisphere is not None:
        findings.append(Finding("laterality", f"Tumor in the {measured.hemisphere} hemisphere; "
                                              f"{'crosses' if measured.crosses_midline else 'does not cross'} "
                                              "the midline."))
    if response is not None:
        findings.append(Finding("response", response_summary(response)))
    return tuple(findings)


def response_summary(response: Response) -> str:
    """One sentence: what changed since the prior study and the RANO 2.0 categories."""
    wt, et = response.region_changes["WT"], response.region_changes["ET"]

    def change(c: Any) -> str:
        return f"{c.change_ml:+.1f} mL" + (f" ({c.change_percent:+.0f} %)" if c.change_percent is not None else "")
    spd = (f"; SPD {response.spd_prior_mm2:.0f} -> {response.spd_current_mm2:.0f} mm²"
           if response.spd_prior_mm2 or response.spd_current_mm2 else "")
    new = f"; new enhancing lesion(s): {len(response.new_lesions)}" if response.new_lesions else ""
    categories = "; ".join(f"RANO 2.0 {a.method}: {a.category}{' (preliminary)' if a.preliminary else ''}"
                           for a in (response.bidimensional, response.volumetric))
    return f"Since the prior study: whole tumor {change(wt)}, enhancing tumor {change(et)}{spd}{new}. {categories}."
