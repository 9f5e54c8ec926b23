"""Response between two time points (RANO 2.0): enhancing lesions matched across time, changes
of the volumes and of the SPD, and the RANO 2.0 category computed twice, bidimensionally and
volumetrically.

RANO rules as implemented (:func:`assess`):

* PR and CR compare with ``prior`` (pass the baseline scan as ``prior`` for RANO's comparison
  with baseline); PD compares with the nadir, the smaller of ``prior`` and the given nadir.
* Bidimensional: PR = SPD down >= 50 %, PD = SPD up >= 25 % from the nadir or a new measurable
  enhancing lesion, CR = all enhancing tumor gone. Volumetric: the same on the enhancing (ET)
  volume with PR >= 65 % and PD >= 40 %; a reference volume below 1 mL (the volumetric
  counterpart of 10 x 10 mm) is not measurable. SD otherwise.
* Non-measurable disease (the prior, or the nadir, has no measurable target): PR is impossible,
  so the category is SD ("non-measurable disease"), CR when all enhancing tumor is gone, PD when
  measurable disease appears (a new lesion, or a lesion that became measurable). Unequivocal
  progression of non-measurable disease is a reader's call; the volumetric result helps there.
  No enhancing tumor on either scan: SD, saying so (non-enhancing tumor, judged on T2/FLAIR by
  RANO, is not assessed here; only its WT change is reported).
* CR and PR need no new lesion and a steroid dose that is not "increased"; CR also needs no
  steroids ("none"). An imaging CR on steroids is reported as SD with the reason "CR on imaging,
  pending steroid taper"; ``imaging_category`` keeps "CR".
* Clinical status "worse" makes PD (clinical), final. An imaging PD is ``preliminary`` until
  ``progression_confirmed_by_later_scan`` (RANO 2.0 asks for a confirmation scan).
* New lesions are known only from lesion matching (``matches``); without it CR and PR are still
  given, with "new lesions not checked" in the reason, and PD by a new lesion cannot be found.
  Likewise a clinical status "unknown" does not hold back CR or PR; the reason says it was not given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lib.brats import ET
from lib.errors import InputError, InvalidGeometryError
from lib.transforms import Grid, array_xyz, register_rigid, resample_label

from .measure import Measurements, label_components

STEROID_DOSES: tuple[str, ...] = ("none", "stable", "increased", "decreased", "unknown")
CLINICAL_STATUSES: tuple[str, ...] = ("improved", "stable", "worse", "unknown")

#: Bidimensional thresholds: SPD change (fraction) for PR (vs prior) and PD (vs nadir).
BIDIMENSIONAL_PR_DECREASE = 0.50
BIDIMENSIONAL_PD_INCREASE = 0.25
#: Volumetric thresholds on the enhancing volume.
VOLUMETRIC_PR_DECREASE = 0.65
VOLUMETRIC_PD_INCREASE = 0.40
#: Smallest measurable enhancing volume (mL) for the volumetric method.
VOLUMETRIC_MEASURABLE_ML = 1.0

#: Lesion match statuses (:class:`LesionMatch`).
#: How close to the prior tumor (mm) a lesion with no prior enhancing counterpart counts as
#: growth of known disease rather than a new lesion: rigid registration and the drawn border
#: of a tumor are each good to a few millimetres.
PRIOR_TUMOR_MARGIN_MM = 5.0
MATCHED, WITHIN, NEW, GONE, MERGED = "matched", "within prior tumor", "new", "gone", "merged"

CR, PR, SD, PD = "CR", "PR", "SD", "PD"


# --------------------------------------------------------------------------- lesion matching
@dataclass(frozen=True)
class LesionMatch:
    """One enhancing lesion followed across time.

    ``status``: "matched" (a current lesion and the prior lesion it overlaps most), "new" (a
    current lesion overlapping no prior lesion nor the prior tumor; ``prior_id`` None), "within
    prior tumor" (a current lesion overlapping no prior enhancing lesion but inside the prior
    tumor, e.g. a once non-enhancing core that now enhances: growth of known disease, not a new
    lesion; ``prior_id`` None), "gone" (a prior lesion that
    no current lesion overlaps; ``current_id`` None) or "merged" (a prior lesion that overlaps a
    current lesion whose best match is another prior lesion; ``current_id`` is the current lesion
    it overlaps most). ``overlap_voxels``: voxels shared on the current grid (with
    the prior lesion; with the prior tumor for "within prior tumor")."""

    status: str
    current_id: int | None
    prior_id: int | None
    overlap_voxels: int

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "current_id": self.current_id, "prior_id": self.prior_id,
                "overlap_voxels": self.overlap_voxels}


def prior_on_current_grid(prior_label: sitk.Image, prior_reference: sitk.Image,
                          current_reference: sitk.Image) -> sitk.Image:
    """The prior label brought onto the current grid, for :func:`match_lesions`.

    The prior reference image (its t1c) is rigidly registered onto the current reference (its
    t1c) with :func:`lib.transforms.register_rigid` (raises :class:`lib.errors.RegistrationError`
    when that fails), then ``prior_label`` (on the prior reference's grid) is resampled through
    that transform with :func:`lib.transforms.resample_label`: per-class linear weights and
    argmax, so values are never blended and volumes are kept. Any non-negative integer label
    works (a BraTS label, or an enhancing-lesion map). Returns UInt8 on the current grid.
    """
    if not Grid.of(prior_label).matches(Grid.of(prior_reference)):
        raise InvalidGeometryError("the prior label lies on another grid than the prior reference image")
    n_classes = int(np.max(array_xyz(prior_label))) + 1
    if n_classes > 256:
        raise InputError(f"labels up to 255 can be resampled, got {n_classes - 1}")
    registration = register_rigid(current_reference, prior_reference)  # maps current points to prior points
    return resample_label(prior_label, Grid.of(current_reference), registration.transform, n_classes)


def _prior_on_current(current: Measurements, prior: Measurements,
                      prior_label_on_current_grid: sitk.Image | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Prior enhancing-lesion ids and prior tumor mask (None when unknown) on the current grid
    (X, Y, Z), see :func:`match_lesions`."""
    if prior_label_on_current_grid is None:
        if not Grid.of(prior.enhancing_lesion_map).matches(current.grid):
            raise InvalidGeometryError("the prior was measured on another grid: pass its label resampled onto the "
                                       "current grid (prior_on_current_grid)")
        return array_xyz(prior.enhancing_lesion_map), None
    if not Grid.of(prior_label_on_current_grid).matches(current.grid):
        raise InvalidGeometryError("prior_label_on_current_grid lies on another grid than the current measurements")
    labels = array_xyz(prior_label_on_current_grid)
    ids, _ = label_components(labels == ET)
    outside_mm = ndimage.distance_transform_edt(labels == 0, sampling=current.grid.spacing)
    return ids, outside_mm <= PRIOR_TUMOR_MARGIN_MM


def match_lesions(current: Measurements, prior: Measurements,
                  prior_label_on_current_grid: sitk.Image | None) -> list[LesionMatch]:
    """Pair the enhancing lesions of two time points by voxel overlap on the current grid.

    ``prior_label_on_current_grid``: the prior BraTS label on the current grid (from
    :func:`prior_on_current_grid`); its enhancing components are the prior lesions, numbered as
    :func:`lib.report.measure.measure` numbers them (by decreasing volume), so ``prior_id`` is
    the id in ``prior.enhancing_lesions`` when resampling kept each lesion whole and their volume
    order. None: the prior was measured on the current grid, and its own lesion map is used
    (then the prior tumor is not known, and "within prior tumor" is not found).

    Rule: each current lesion matches the prior lesion it shares most voxels with (any overlap);
    a current lesion overlapping none is WITHIN PRIOR TUMOR when it overlaps the prior label
    (any tumor class) or comes within :data:`PRIOR_TUMOR_MARGIN_MM` of it, else NEW; a prior
    lesion no current lesion overlaps is GONE; a prior lesion that overlaps only current lesions
    matched to other prior lesions is MERGED. Sorted: current lesions by id, then the remaining
    prior lesions by id.
    """
    now = array_xyz(current.enhancing_lesion_map).astype(np.int64)
    prior_ids, prior_tumor = _prior_on_current(current, prior, prior_label_on_current_grid)
    before = prior_ids.astype(np.int64)
    n_now, n_before = int(now.max(initial=0)), int(before.max(initial=0))
    both = (now > 0) & (before > 0)
    overlap = np.bincount(now[both] * (n_before + 1) + before[both],
                          minlength=(n_now + 1) * (n_before + 1)).reshape(n_now + 1, n_before + 1)
    in_prior_tumor = (np.bincount(now[prior_tumor], minlength=n_now + 1) if prior_tumor is not None
                      else np.zeros(n_now + 1, np.int64))
    matches: list[LesionMatch] = []
    chosen: set[int] = set()
    for c in range(1, n_now + 1):
        p = int(np.argmax(overlap[c, 1:])) + 1 if n_before else 0
        if p and overlap[c, p] > 0:
            matches.append(LesionMatch(MATCHED, c, p, int(overlap[c, p])))
            chosen.add(p)
        elif in_prior_tumor[c] > 0:
            matches.append(LesionMatch(WITHIN, c, None, int(in_prior_tumor[c])))
        else:
            matches.append(LesionMatch(NEW, c, None, 0))
    for p in range(1, n_before + 1):
        if p in chosen:
            continue
        c = int(np.argmax(overlap[1:, p])) + 1 if n_now else 0
        if c and overlap[c, p] > 0:
            matches.append(LesionMatch(MERGED, c, p, int(overlap[c, p])))
        else:
            matches.append(LesionMatch(GONE, None, p, 0))
    return matches


# --------------------------------------------------------------------------- assessment
@dataclass(frozen=True)
class ClinicalInputs:
    """What a clinician fills in; images cannot give it. ``steroid_dose`` compared with the prior
    scan: "none" (no corticosteroids, or physiological replacement only), "stable", "increased",
    "decreased", "unknown"; ``clinical_status``: "improved", "stable", "worse", "unknown"."""

    steroid_dose: str = "unknown"
    clinical_status: str = "unknown"

    def __post_init__(self) -> None:
        if self.steroid_dose not in STEROID_DOSES:
            raise InputError(f"steroid_dose must be one of {', '.join(STEROID_DOSES)}, got {self.steroid_dose!r}")
        if self.clinical_status not in CLINICAL_STATUSES:
            raise InputError(f"clinical_status must be one of {', '.join(CLINICAL_STATUSES)}, "
                             f"got {self.clinical_status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"steroid_dose": self.steroid_dose, "clinical_status": self.clinical_status}


#: Nothing known clinically (the default of :func:`assess`).
UNKNOWN_CLINICAL = ClinicalInputs()


@dataclass(frozen=True)
class RegionChange:
    """Volume of one region at both time points (mL); ``change_percent`` None when the prior is 0."""

    prior_ml: float
    current_ml: float
    change_ml: float
    change_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"prior_ml": self.prior_ml, "current_ml": self.current_ml, "change_ml": round(self.change_ml, 3),
                "change_percent": None if self.change_percent is None else round(self.change_percent, 1)}


@dataclass(frozen=True)
class Assessment:
    """The RANO 2.0 category by one method ("bidimensional" or "volumetric").

    ``category``: "CR", "PR", "SD" or "PD", all rules applied; ``imaging_category``: what the
    images alone say (an imaging CR on steroids is ``category`` SD); ``preliminary``: an imaging
    PD not yet confirmed by a later scan; ``measurable_disease``: the nadir had measurable
    disease; ``reason``: one human-readable line."""

    method: str
    category: str
    imaging_category: str
    preliminary: bool
    measurable_disease: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "category": self.category, "imaging_category": self.imaging_category,
                "preliminary": self.preliminary, "measurable_disease": self.measurable_disease, "reason": self.reason}


@dataclass(frozen=True)
class Response:
    """The response of ``current`` against ``prior`` (:func:`assess`).

    ``region_changes``: NCR, ED, ET, TC, WT; SPD at both time points and at the nadir (min of the
    prior and the given nadir, mm²) with changes in %; ``et_nadir_ml`` likewise; ``new_lesions``
    / ``new_measurable_lesions`` / ``gone_lesions``: lesion ids (current / current / prior), None
    without lesion matching; the two assessments and the clinical inputs they used."""

    region_changes: dict[str, RegionChange]
    spd_prior_mm2: float
    spd_current_mm2: float
    spd_nadir_mm2: float
    spd_change_from_prior_percent: float | None
    spd_change_from_nadir_percent: float | None
    et_nadir_ml: float
    new_lesions: tuple[int, ...] | None
    new_measurable_lesions: tuple[int, ...] | None
    gone_lesions: tuple[int, ...] | None
    bidimensional: Assessment
    volumetric: Assessment
    clinical: ClinicalInputs

    def to_dict(self) -> dict[str, Any]:
        def pct(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        def ids(v: tuple[int, ...] | None) -> list[int] | None:
            return None if v is None else list(v)

        return {
            "region_changes": {k: v.to_dict() for k, v in self.region_changes.items()},
            "spd_prior_mm2": round(self.spd_prior_mm2, 1), "spd_current_mm2": round(self.spd_current_mm2, 1),
            "spd_nadir_mm2": round(self.spd_nadir_mm2, 1),
            "spd_change_from_prior_percent": pct(self.spd_change_from_prior_percent),
            "spd_change_from_nadir_percent": pct(self.spd_change_from_nadir_percent),
            "et_nadir_ml": round(self.et_nadir_ml, 3),
            "new_lesions": ids(self.new_lesions), "new_measurable_lesions": ids(self.new_measurable_lesions),
            "gone_lesions": ids(self.gone_lesions),
            "bidimensional": self.bidimensional.to_dict(), "volumetric": self.volumetric.to_dict(),
            "clinical": self.clinical.to_dict(),
        }


def percent_change(before: float, after: float) -> float | None:
    """(after - before) / before in %, None when ``before`` is 0."""
    return None if before == 0 else 100.0 * (after - before) / before


@dataclass(frozen=True)
class _Method:
    """One way of sizing the enhancing disease: its name, the quantity, unit and decimals shown in
    reasons, RANO's thresholds (fractions), and the smallest reference value that is measurable."""

    name: str
    quantity: str
    unit: str
    decimals: int
    pr_decrease: float
    pd_increase: float
    measurable_from: float

    def describe(self, before: float, after: float) -> str:
        """E.g. "SPD 1234 -> 560 mm² (-54.6 %)"."""
        change = percent_change(before, after)
        shown = "" if change is None else f" ({change:+.1f} %)"
        return f"{self.quantity} {before:.{self.decimals}f} -> {after:.{self.decimals}f} {self.unit}{shown}"


#: The SPD sums measurable lesions only, so any positive SPD is measurable disease.
BIDIMENSIONAL = _Method("bidimensional", "SPD", "mm²", 0, BIDIMENSIONAL_PR_DECREASE, BIDIMENSIONAL_PD_INCREASE,
                        measurable_from=float(np.nextafter(0.0, 1.0)))
VOLUMETRIC = _Method("volumetric", "ET volume", "mL", 2, VOLUMETRIC_PR_DECREASE, VOLUMETRIC_PD_INCREASE,
                     measurable_from=VOLUMETRIC_MEASURABLE_ML)

#: The words of each category at the end of a reason.
VERDICTS = {CR: "complete response", PR: "partial response", SD: "stable disease", PD: "progressive disease"}


@dataclass(frozen=True)
class _Evidence:
    """What both methods share: enhancing volumes (mL), whether any enhancing lesion is there (a
    lesion smaller than the volumes' rounding still counts), new lesions (None: not checked)."""

    prior_et_ml: float
    current_et_ml: float
    prior_enhancing: bool
    current_enhancing: bool
    new_lesions: tuple[int, ...] | None
    new_measurable_lesions: tuple[int, ...] | None


def _ids(ids: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in ids)


def _imaging_category(method: _Method, prior: float, nadir: float, current: float,
                      evidence: _Evidence) -> tuple[str, str]:
    """(category, finding) from the images alone; the finding is the reason without its verdict."""
    measurable_nadir = nadir >= method.measurable_from
    if evidence.new_measurable_lesions:
        return PD, f"new measurable enhancing lesion ({_ids(evidence.new_measurable_lesions)})"
    if measurable_nadir and current >= nadir * (1 + method.pd_increase):
        return PD, f"{method.describe(nadir, current)} from nadir"
    if not measurable_nadir and current >= method.measurable_from:
        return PD, f"{method.describe(nadir, current)} from nadir: measurable disease where there was none"
    if not evidence.current_enhancing:
        if not evidence.prior_enhancing:
            return SD, "no enhancing tumor on either scan (non-enhancing tumor is not assessed here)"
        return CR, f"enhancing tumor {evidence.prior_et_ml:.2f} -> 0 mL, all enhancing disease gone"
    if prior < method.measurable_from:
        return SD, f"non-measurable disease on the prior scan ({method.describe(prior, current)}), no PR possible"
    if current <= prior * (1 - method.pr_decrease):
        if evidence.new_lesions:
            new = _ids(evidence.new_lesions)
            return SD, f"{method.describe(prior, current)}, but new non-measurable lesion ({new})"
        return PR, method.describe(prior, current)
    return SD, method.describe(prior, current)


def _category(method: _Method, prior: float, nadir: float, current: float, evidence: _Evidence,
              clinical: ClinicalInputs, confirmed: bool) -> Assessment:
    """The final category: the imaging category, then clinical status and steroids applied."""
    imaging, finding = _imaging_category(method, prior, nadir, current, evidence)

    def result(category: str, reason: str, preliminary: bool = False) -> Assessment:
        return Assessment(method.name, category, imaging, preliminary, nadir >= method.measurable_from, reason)

    caveats = ("" if evidence.new_lesions is not None else " (new lesions not checked)") + \
        ("" if clinical.clinical_status != "unknown" else " (clinical status not given)")
    if clinical.clinical_status == "worse":
        return result(PD, f"clinical deterioration: progressive disease (clinical); images: {finding}")
    if imaging == PD:
        pending = "" if confirmed else " (preliminary until confirmed by a later scan)"
        return result(PD, f"{finding}: progressive disease{pending}", preliminary=not confirmed)
    if imaging in (CR, PR) and clinical.steroid_dose == "increased":
        return result(SD, f"{finding}, but steroid dose increased: stable disease, not {imaging}")
    if imaging == CR and clinical.steroid_dose != "none":
        return result(SD, f"{finding}: CR on imaging, pending steroid taper (steroid dose: {clinical.steroid_dose}): "
                          "stable disease until off steroids")
    return result(imaging, f"{finding}: {VERDICTS[imaging]}{caveats if imaging in (CR, PR) else ''}")


def _new_lesions(current: Measurements, matches: Sequence[LesionMatch] | None) -> tuple[tuple[int, ...] | None,
                                                                                         tuple[int, ...] | None]:
    if matches is None:
        return None, None
    new = tuple(m.current_id for m in matches if m.status == NEW and m.current_id)
    return new, tuple(i for i in new if current.enhancing_lesion(i).measurable)


def assess(current: Measurements, prior: Measurements, *, nadir_spd_mm2: float | None = None,
           nadir_et_ml: float | None = None, matches: Sequence[LesionMatch] | None = None,
           clinical: ClinicalInputs = UNKNOWN_CLINICAL,
           progression_confirmed_by_later_scan: bool = False) -> Response:
    """RANO 2.0 response of ``current`` against ``prior``, bidimensional and volumetric (rules in
    the module docstring). ``nadir_spd_mm2`` / ``nadir_et_ml``: the smallest SPD / enhancing
    volume since baseline, when known (the prior's own values otherwise); ``matches``: from
    :func:`match_lesions`, for new and gone lesions; ``clinical``: steroid dose and clinical
    status; ``progression_confirmed_by_later_scan``: an imaging PD is then final."""
    regions = {name: RegionChange(prior.volumes_ml[name], current.volumes_ml[name],
                                  current.volumes_ml[name] - prior.volumes_ml[name],
                                  percent_change(prior.volumes_ml[name], current.volumes_ml[name]))
               for name in current.volumes_ml}
    spd_nadir = prior.spd_mm2 if nadir_spd_mm2 is None else min(prior.spd_mm2, nadir_spd_mm2)
    et_prior, et_current = prior.volumes_ml["ET"], current.volumes_ml["ET"]
    et_nadir = et_prior if nadir_et_ml is None else min(et_prior, nadir_et_ml)
    new, new_measurable = _new_lesions(current, matches)
    gone = None if matches is None else tuple(m.prior_id for m in matches if m.status == GONE and m.prior_id)
    evidence = _Evidence(et_prior, et_current, bool(prior.enhancing_lesions), bool(current.enhancing_lesions), new,
                         new_measurable)
    confirmed = progression_confirmed_by_later_scan
    return Response(
        region_changes=regions, spd_prior_mm2=prior.spd_mm2, spd_current_mm2=current.spd_mm2, spd_nadir_mm2=spd_nadir,
        spd_change_from_prior_percent=percent_change(prior.spd_mm2, current.spd_mm2),
        spd_change_from_nadir_percent=percent_change(spd_nadir, current.spd_mm2), et_nadir_ml=et_nadir,
        new_lesions=new, new_measurable_lesions=new_measurable, gone_lesions=gone,
        bidimensional=_category(BIDIMENSIONAL, prior.spd_mm2, spd_nadir, current.spd_mm2, evidence, clinical,
                                confirmed),
        volumetric=_category(VOLUMETRIC, et_prior, et_nadir, et_current, evidence, clinical, confirmed),
        clinical=clinical,
    )
