"""Which series of an MR study is t1n, t1c, t2w and t2f, from DICOM attributes.

Sites name series in many ways ("AX T1 POST GD", "t1_mprage_sag_post", "T1W_SE",
"FLAIR_AX", nothing at all, or something misleading), so the decision uses, in order:
exclusions (localizers, diffusion, derived maps, susceptibility/T2*), the acquisition
physics (inversion recovery with a long TI and long TE is FLAIR whatever the name says; a
short TI and TE, as in T1 FLAIR and MPRAGE, is T1), keywords of the
series description and protocol name, then TR/TE. T1 with or without contrast is told
apart by ContrastBolusAgent or by the description; when one T1 of a study is known to be
post-contrast, the other is the pre-contrast T1. A sequence with no candidate is
missing; one with two candidates is ambiguous; either way the study is refused with the
reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.brats import SEQUENCES

T1 = "t1"  # T1-weighted, contrast not decided yet
OTHER = "other"

_FLAIR = re.compile(r"flair|dark[-_ ]?fluid|tirm|\bt2f\b")
_T2 = re.compile(r"(^|[^a-z0-9])t2(w|_|\b)|\bt2w\b")
_T1 = re.compile(r"(^|[^a-z0-9])t1(w|c|_|\b)|mprage|mp-rage|spgr|bravo|\btfl\b|vibe|\bt1w\b")
_POST = re.compile(r"post|\+ ?c\b|\bgd\b|gad|contrast|\bce\b|\bt1c\b|_gd\b|\bc\+")
_PRE = re.compile(r"\bpre\b|_pre\b|pre[-_ ]?contrast|\bnative\b|\bt1n\b")
_LOCALIZER = re.compile(r"loc|scout|survey|localizer|aahead")
_DIFFUSION = re.compile(r"dwi|diff|\badc\b|trace|dti|\bb ?1000\b|ep2d")
_DERIVED = re.compile(r"\bmpr\b|\bmip\b|reformat|subtract|\bsub\b")
_SUSCEPTIBILITY = re.compile(r"swi|swan|susceptib|t2\*|t2 ?star|hemo|\bmin ?ip\b|\bpha(se)?\b")
_T1_FLAIR = re.compile(r"t1[ _-]?(w[ _-]?)?flair")


@dataclass(frozen=True)
class SeriesInfo:
    """The attributes the classifier reads, taken from one instance of a series."""

    uid: str
    description: str = ""
    protocol: str = ""
    image_type: tuple[str, ...] = ()
    scanning_sequence: tuple[str, ...] = ()
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    contrast_agent: str | None = None
    diffusion_b_value: float | None = None
    instances: int = 0
    series_number: int | None = None

    @property
    def text(self) -> str:
        return f"{self.description} {self.protocol}".lower().strip()

    @classmethod
    def from_dicom_json(cls, uid: str, attributes: Mapping[str, Any], instances: int = 0) -> "SeriesInfo":
        """From a DICOM JSON instance (as QIDO-RS / WADO-RS metadata return it)."""
        def value(tag: str) -> Any:
            values = attributes.get(tag, {}).get("Value")
            return values if values else None

        def first(tag: str) -> Any:
            v = value(tag)
            return v[0] if v else None

        def number(tag: str) -> float | None:
            v = first(tag)
            try:
                return float(v) if v is not None else None
            except (TypeError, ValueError):
                return None

        def text(tag: str) -> str:
            v = first(tag)
            return str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v or "")

        return cls(uid=uid, description=text("0008103E"), protocol=text("00181030"),
                   image_type=tuple(str(v).upper() for v in value("00080008") or ()),
                   scanning_sequence=tuple(str(v).upper() for v in value("00180020") or ()),
                   repetition_time=number("00180080"), echo_time=number("00180081"),
                   inversion_time=number("00180082"), contrast_agent=text("00180010") or None,
                   diffusion_b_value=number("00189087"), instances=instances,
                   series_number=int(number("00200011")) if number("00200011") is not None else None)


@dataclass(frozen=True)
class SeriesDecision:
    kind: str  # one of SEQUENCES, T1 (contrast undecided) or OTHER
    reason: str


@dataclass(frozen=True)
class Rule:
    """One row of the decision table: the first rule whose test holds decides."""

    name: str
    test: Callable[[SeriesInfo], bool]
    kind: str


def _long(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def _short(value: float | None, threshold: float) -> bool:
    return value is not None and value < threshold


RULES: tuple[Rule, ...] = (
    Rule("localizer", lambda s: "LOCALIZER" in s.image_type or bool(_LOCALIZER.search(s.text)), OTHER),
    Rule("diffusion", lambda s: s.diffusion_b_value is not None or "EP" in s.scanning_sequence
         or bool(_DIFFUSION.search(s.text)), OTHER),
    Rule("derived image", lambda s: "DERIVED" in s.image_type or bool(_DERIVED.search(s.text)), OTHER),
    Rule("too few slices for a volume", lambda s: 0 < s.instances < 8, OTHER),
    Rule("susceptibility-weighted or T2* (SWI, SWAN, T2* GRE)", lambda s: bool(_SUSCEPTIBILITY.search(s.text)),
         OTHER),
    Rule("inversion recovery, TI >= 1500 ms, TE >= 60 ms (FLAIR)",
         lambda s: _long(s.inversion_time, 1500) and _long(s.echo_time, 60), "t2f"),
    # T1 FLAIR and MPRAGE invert too, with a short TI and TE: T1-weighted, not FLAIR
    Rule("inversion recovery, TI < 1500 ms, TE < 30 ms, or 'T1 FLAIR' (T1)",
         lambda s: (_short(s.inversion_time, 1500) and _short(s.echo_time, 30)) or bool(_T1_FLAIR.search(s.text)),
         T1),
    Rule("description says FLAIR", lambda s: bool(_FLAIR.search(s.text)), "t2f"),
    Rule("description says T1", lambda s: bool(_T1.search(s.text)), T1),
    Rule("description says T2", lambda s: bool(_T2.search(s.text)), "t2w"),
    Rule("TE >= 60 ms, TR >= 2000 ms, no inversion (T2)",
         lambda s: _long(s.echo_time, 60) and _long(s.repetition_time, 2000) and s.inversion_time is None, "t2w"),
    Rule("TE < 30 ms (T1)", lambda s: _short(s.echo_time, 30) and not _long(s.inversion_time, 1500), T1),
)


def classify_series(series: SeriesInfo) -> SeriesDecision:
    """The kind of one series, with the rule that decided it. T1 series are further split
    into t1c / t1n when the contrast agent or the description says so."""
    for rule in RULES:
        if rule.test(series):
            if rule.kind != T1:
                return SeriesDecision(rule.kind, rule.name)
            if series.contrast_agent:
                return SeriesDecision("t1c", f"{rule.name}; contrast agent '{series.contrast_agent}'")
            if _POST.search(series.text):
                return SeriesDecision("t1c", f"{rule.name}; description says post-contrast")
            if _PRE.search(series.text):
                return SeriesDecision("t1n", f"{rule.name}; description says pre-contrast")
            return SeriesDecision(T1, f"{rule.name}; contrast not stated")
    return SeriesDecision(OTHER, "no rule matched (description and TR/TE do not identify it)")


@dataclass
class StudySequences:
    """The outcome for a study: ``series`` maps each identified sequence to a series UID;
    ``problem`` says why the study cannot be segmented (None when all four are there)."""

    series: dict[str, str]
    decisions: dict[str, SeriesDecision] = field(default_factory=dict)
    problem: str | None = None


def identify_sequences(series: Sequence[SeriesInfo]) -> StudySequences:
    """Assign at most one series to each of t1n, t1c, t2w, t2f."""
    decisions = {s.uid: classify_series(s) for s in series}
    candidates: dict[str, list[str]] = {k: [] for k in (*SEQUENCES, T1)}
    for uid, decision in decisions.items():
        if decision.kind in candidates:
            candidates[decision.kind].append(uid)
    # an undecided T1 next to a known post-contrast T1 (and no known pre-contrast one) is the pre-contrast T1
    if len(candidates[T1]) == 1 and candidates["t1c"] and not candidates["t1n"]:
        uid = candidates[T1].pop()
        candidates["t1n"].append(uid)
        decisions[uid] = SeriesDecision("t1n", decisions[uid].reason + "; the other T1 is post-contrast")
    elif len(candidates[T1]) == 1 and candidates["t1n"] and not candidates["t1c"]:
        uid = candidates[T1].pop()
        candidates["t1c"].append(uid)
        decisions[uid] = SeriesDecision("t1c", decisions[uid].reason + "; the other T1 is pre-contrast")
    problems, chosen = [], {}
    for seq in SEQUENCES:
        found = candidates[seq]
        if len(found) == 1:
            chosen[seq] = found[0]
        elif not found:
            problems.append(f"no {seq} series" + (f" (T1 series without contrast information: {len(candidates[T1])})"
                                                  if seq in ("t1n", "t1c") and candidates[T1] else ""))
        else:
            problems.append(f"{len(found)} series could be {seq}")
    return StudySequences(chosen, decisions, "; ".join(problems) or None)
