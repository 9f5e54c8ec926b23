"""Which series of an MR study is t1n, t1c, t2w and t2f, from DICOM attributes.

Sites name series in many ways ("AX T1 POST GD", "t1_mprage_sag_p2_iso_KM", "sT1W_3D_TFE_PRE_GD",
"T1 vor KM", "Ax T1,Flair +C", nothing at all, or something misleading), so every series goes
through one table of :class:`Rule` rows, and the first row that holds decides:

1. exclusions: localizers and calibrations, diffusion, perfusion and dynamic series,
   angiography, spectroscopy and functional series, derived images (ImageType DERIVED,
   reformats, MIPs, subtractions, maps), too few slices, susceptibility-weighted and T2* gradient
   echo, steady-state free precession, MP2RAGE inversion images, STIR, proton density;
2. the acquisition physics where it is decisive: inversion recovery with a long TI and a long TE
   is FLAIR; a short TE with a short TI or a short TR is T1; a long TE and TR without inversion is
   T2. Physics vetoes a description that contradicts it ("FLAIR" with TE 9 ms is a T1 FLAIR, "T1"
   with TE 100 ms and TR 4000 ms is not T1), and the reason says so;
3. keywords, when the physics is absent or not decisive: the words of the series description,
   or of the protocol name when the description names no sequence. "T1" with "FLAIR" (or TIRM,
   dark-fluid) is a T1 FLAIR; then "FLAIR", "T1", "T2".

A T1 is pre-contrast (t1n) or post-contrast (t1c) by the words of its name first, qualifiers
binding to what they qualify: "pre gd", "pre-contrast", "w/o contrast", "non contrast", "ohne KM",
"vor KM", "nativ", "C-" are pre; "post gd", "+C", "C+", "w/ contrast", "mit KM", "nach KM", "KM", "ce"
are post ("post fossa" and "pre-op" say nothing about contrast). Without such words,
ContrastBolusAgent (0018,0010) makes it post-contrast, unless the study records the agent on
every series or on its first one (registered for the whole exam, it tells nothing).

At study level, a single T1 without contrast information next to a post-contrast T1 is the
pre-contrast one, and next to a pre-contrast T1 the post-contrast one, unless the series numbers
say it was acquired on the wrong side of it. A sequence with no candidate is missing; one with
two candidates is ambiguous; either way the study is refused with the reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib.brats import SEQUENCES

T1 = "t1"  # T1-weighted, contrast not decided yet
OTHER = "other"


# --- words ----------------------------------------------------------------------------------------

def _words(text: str) -> str:
    """The words of a series name, lower case, separated by single spaces: "w/o" and "w/" are
    spelled out, "C-" before a separator is "without contrast" ("AX T1 C-"), "+" stands alone ("T1+C" ->
    "t1 + c"), "*" stays ("t2*"), every other separator (space, _ - , / : ( ) ...) is a space."""
    text = re.sub(r"\bw/\s*o\b", " without ", text.lower())
    text = re.sub(r"\bc-(?=[\s_]|$)", " without contrast ", text)
    text = re.sub(r"\bw/", " with ", text).replace("+", " + ")
    return " ".join(word for word in re.split(r"[^a-z0-9*+]+", text) if word)


def _any(*patterns: str) -> re.Pattern[str]:
    """A pattern matching whole words (or runs of words) of a :func:`_words` string."""
    return re.compile(r"(?<!\S)(?:" + "|".join(patterns) + r")(?!\S)")


_ORIENTATION = r"(?:tra|cor|sag|ax|axi|axial|coronal|sagittal|ob\w*|thick|thin|range)"
_LOCALIZER = _any(r"locs?", r"locali[sz]er\w*", r"locator", r"\w*scout\w*", r"survey\w*", r"aahead\w*",
                  r"3 ?pl(?:ane)?", r"tri ?pilot", r"cal", r"calibration", r"scanogram")
_DIFFUSION = _any(r"\w*dwi\w*", r"\w*diff\w*", r"[ed]?adc\w*", r"\w*trace\w*", r"dti\w*", r"dki\w*",
                  r"b ?\d{3,4}", r"\d{3,4}b", r"ep2d\w*", r"tensor", r"fa", r"col ?fa", r"dmri\w*", r"apparent")
_PERFUSION = _any(r"\w*perf\w*", r"pwi", r"dsc\w*", r"dce\w*", r"\w*cbv\w*", r"\w*cbf\w*", r"mtt", r"ttp",
                  r"tmax", r"k ?trans", r"p?c?asl\w*", r"\w*dyn\w*", r"twist\w*", r"disco", r"bolus", r"ph\d+",
                  r"leakage")
_ANGIOGRAPHY = _any(r"\w*tof\w*", r"\w*mra\w*", r"\w*angio\w*", r"venogra\w*", r"mrv", r"inhance\w*", r"cow",
                    r"tricks", r"venc\w*")
_SPECTROSCOPY_FUNCTIONAL = _any(r"csi\w*", r"svs\w*", r"mrs", r"\w*spectro\w*", r"probe\w*", r"press",
                                r"bold\w*", r"\w*fmri\w*", r"resting\w*", r"field ?map\w*", r"b[01] ?map\w*",
                                r"\w*shim\w*")
_DERIVED = _any(r"\w*mip\w*", r"min ?ip", r"reformat\w*", rf"mpr {_ORIENTATION}", rf"{_ORIENTATION} mpr",
                r"subtract\w*", r"sub", r"\w*processed\w*", r"fusion", r"fused", r"screen ?save", r"\w*report\w*",
                r"t[12] ?map\w*", r"\w*mapping", r"relaxometry", r"composed", r"mobiview\w*")
_SUSCEPTIBILITY = _any(r"t2\*\S*", r"t2 ?star\w*", r"swi\w*", r"swan\w*", r"h(?:a)?emo\w*", r"suscept\w*",
                       r"pha", r"phase", r"mag images", r"merge", r"medic", r"fsbb")
_GRADIENT_ECHO = _any(r"\w*gre", r"gre\w*", r"\w*ffe", r"fe", r"fl2d\w*", r"mpgr")
_STEADY_STATE = _any(r"fiesta\w*", r"ciss\w*", r"trufi\w*", r"true ?fisp", r"b ?ffe", r"bssfp")
_STIR = _any(r"\w*stir\w*")
_MP2RAGE_INVERSION = _any(r"inv[12]")
_PROTON_DENSITY = _any(r"pd\w*", r"proton ?density", r"dual ?echo", r"dual", r"double ?echo")

_T1_WORD = _any(r"(?:s|e|v|vs|cs|3d|3)?t1(?:w|wi|c|ce|wce|gd|km|n|se|fse|tse|tfe|ffe|ir|fl|flair|pre|post)?",
                r"\w*mprage\w*", r"mp ?rage", r"\w*spgr\w*", r"bravo\w*", r"vibe\w*", r"\w*tfe\w*", r"tfl\w*",
                r"lava\w*", r"\w*thrive\w*")
_T2_WORD = _any(r"(?:s|e|v|vs|cs|3d|3)?t2(?:w|wi|se|fse|tse|flair|f)?")
_FLAIR_WORD = _any(r"\w*flair\w*", r"t2f", r"dark ?fluid", r"\w*tirm\w*", r"tir", r"fluid ?attenuated")

_CONTRAST_WORD = (r"contrast\w*|kontrast\w*|km|gd|gad|gado\w*|gadolinium|dtpa|mdc|ce|enh|enhanced|gadovist|"
                  r"gadavist|dotarem|magnevist|multihance|prohance|omniscan|clariscan|gadobutrol|gadoterate")
_CONTRAST = re.compile(rf"(?:{_CONTRAST_WORD})")
_NEGATION = frozenset({"pre", "vor", "ohne", "without", "wo", "no", "non", "sans", "sin", "senza", "before", "prior"})
_PRE_WORD = frozenset({"pre", "precon", "precontrast", "nativ", "native", "plain", "unenhanced", "nonenhanced",
                       "t1n", "t1pre"})
_POST_WORD = frozenset({"post", "postcon", "postcontrast", "t1c", "t1ce", "t1wce", "t1gd", "t1km", "t1post"})
#: a "pre" or "post" followed by one of these is about surgery, anatomy or saturation, not contrast
_NOT_ABOUT_CONTRAST = frozenset({"op", "operative", "surgery", "surgical", "rt", "radiation", "radiotherapy", "tx",
                                 "treatment", "therapy", "biopsy", "resection", "fossa", "fos", "sat", "scan"})
_COMPOUND_PRE = re.compile(rf"(?:pre|non|vor|ohne|no)(?:{_CONTRAST_WORD})")     # "precontrast", "nonkontrast"
_COMPOUND_POST = re.compile(rf"(?:post|mit|nach|t1w?)(?:{_CONTRAST_WORD})")     # "postgd", "t1gd"
#: "with and without", "w/wo", "pre/post": a name for both phases (a GE exam protocol name)
_BOTH_PHASES = re.compile(r"\bw(?:ith)?\s*(?:(?:\+|&|and)\s*)?w(?:ith)?o(?:ut)?\b|\bpre\s*(?:(?:\+|&|and)\s*)?post\b")


def _named(words: str) -> str | None:
    """The sequence a name states: T1 (a T1 FLAIR too), "t2f" or "t2w"; None when it names none
    or names conflicting ones (T1 and T2)."""
    t1, t2, flair = (bool(p.search(words)) for p in (_T1_WORD, _T2_WORD, _FLAIR_WORD))
    if flair:
        return (T1 if not t2 else None) if t1 else "t2f"
    if t1 != t2:
        return T1 if t1 else "t2w"
    return None


def _names_a_sequence(words: str) -> bool:
    return any(p.search(words) for p in (_T1_WORD, _T2_WORD, _FLAIR_WORD))


def _contrast_stated(words: str) -> str | None:
    """"pre", "post", "both" (a name for both phases) or None (nothing about contrast).

    A contrast word right after a negation or "pre" ("pre gd", "without iv contrast", "ohne KM",
    "non-contrast") belongs to that pre phrase and is not read again as post evidence."""
    if _BOTH_PHASES.search(words):
        return "both"
    tokens = words.split()
    pre = post = False
    in_pre_phrase: set[int] = set()
    for i, token in enumerate(tokens):
        if token in _NEGATION:
            for j in range(i + 1, min(i + 3, len(tokens))):
                if _CONTRAST.fullmatch(tokens[j]):
                    pre = True
                    in_pre_phrase.update(range(i, j + 1))
                    break
        elif _COMPOUND_PRE.fullmatch(token):
            pre = True
            in_pre_phrase.add(i)
    for i, token in enumerate(tokens):
        if i in in_pre_phrase:
            continue
        before = tokens[i - 1] if i else ""
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _PRE_WORD:
            pre |= after not in _NOT_ABOUT_CONTRAST
        elif token in _POST_WORD:
            post |= after not in _NOT_ABOUT_CONTRAST
        else:
            plus_c = token == "+" and (before == "c" or after == "c" or bool(_CONTRAST.fullmatch(after)))
            post |= plus_c or bool(_CONTRAST.fullmatch(token) or _COMPOUND_POST.fullmatch(token))
    if pre and post:
        return "both"
    return "pre" if pre else "post" if post else None


# --- series ---------------------------------------------------------------------------------------

def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


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
        """Description and protocol name, lower case (the rules read :class:`SeriesFacts`)."""
        return f"{self.description} {self.protocol}".lower().strip()

    @classmethod
    def from_dicom_json(cls, uid: str, attributes: Mapping[str, Any], instances: int = 0) -> SeriesInfo:
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
                   series_number=_as_int(number("00200011")))


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


@dataclass(frozen=True)
class SeriesFacts:
    """What the rules read from one series: its words and its acquisition times (ms; zero or
    absent is None, as some vendors write TI 0 for no inversion)."""

    series: SeriesInfo
    name: str  # words of the description, or of the protocol name when the description is empty
    named: str | None  # the sequence the description (else the protocol name) states, see _named
    named_from: str  # "description" or "protocol name"
    contrast: str | None  # "pre", "post", "both" or None, from the description (else a series protocol name)
    contrast_from: str
    tr: float | None
    te: float | None
    ti: float | None

    @classmethod
    def of(cls, series: SeriesInfo) -> SeriesFacts:
        description, protocol = _words(series.description), _words(series.protocol)
        # a protocol name that names no sequence is the exam's (GE: "BRAIN TUMOR W/WO"), not the series'
        protocol_names = _names_a_sequence(protocol)
        use_protocol = not _names_a_sequence(description) and protocol_names
        contrast, contrast_from = _contrast_stated(description), "description"
        if contrast is None and protocol_names:
            contrast, contrast_from = _contrast_stated(protocol), "protocol name"
        return cls(series, description or protocol, _named(protocol if use_protocol else description),
                   "protocol name" if use_protocol else "description", contrast, contrast_from,
                   _positive(series.repetition_time), _positive(series.echo_time),
                   _positive(series.inversion_time))

    @property
    def inverted(self) -> bool:
        """An inversion recovery: a TI is recorded, or ScanningSequence says IR."""
        return self.ti is not None or "IR" in self.series.scanning_sequence

    @property
    def gradient_echo(self) -> bool:
        return "GR" in self.series.scanning_sequence and "SE" not in self.series.scanning_sequence

    def says(self, pattern: re.Pattern[str]) -> bool:
        return bool(pattern.search(self.name))


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def _below(value: float | None, threshold: float) -> bool:
    return value is not None and value < threshold


@dataclass(frozen=True)
class SeriesDecision:
    kind: str  # one of SEQUENCES, T1 (contrast undecided) or OTHER
    reason: str


@dataclass(frozen=True)
class Rule:
    """One row of the decision table: the first rule whose test holds decides."""

    name: str
    test: Callable[[SeriesFacts], bool]
    kind: str


def _t2_star(f: SeriesFacts) -> bool:
    named = f.says(_SUSCEPTIBILITY) or (f.says(_GRADIENT_ECHO) and not f.says(_T1_WORD))
    # no T1-weighted gradient echo has a TE of 10 ms; only a gradient echo has a TR under 100 ms
    physics = _at_least(f.te, 10) and (f.gradient_echo or _below(f.tr, 100))
    return named or physics


def _flair_after_contrast_unsure(f: SeriesFacts) -> bool:
    """'AX FLAIR+C' with no decisive TE: a T1 FLAIR or a T2-FLAIR after contrast, both are done."""
    return (f.says(_FLAIR_WORD) and not f.says(_T1_WORD) and not f.says(_T2_WORD)
            and f.contrast == "post")


RULES: tuple[Rule, ...] = (
    # exclusions
    Rule("localizer, scout or calibration",
         lambda f: "LOCALIZER" in f.series.image_type or f.says(_LOCALIZER), OTHER),
    Rule("diffusion (b-value, echo planar or named so)",
         lambda f: f.series.diffusion_b_value is not None or "EP" in f.series.scanning_sequence
         or f.says(_DIFFUSION), OTHER),
    Rule("perfusion, dynamic or arterial spin labelling", lambda f: f.says(_PERFUSION), OTHER),
    Rule("angiography (TOF, MRA)", lambda f: f.says(_ANGIOGRAPHY), OTHER),
    Rule("spectroscopy, functional or field map", lambda f: f.says(_SPECTROSCOPY_FUNCTIONAL), OTHER),
    Rule("derived image (ImageType DERIVED, reformat, MIP, subtraction, map)",
         lambda f: "DERIVED" in f.series.image_type or f.says(_DERIVED), OTHER),
    Rule("too few slices for a volume", lambda f: 0 < f.series.instances < 8, OTHER),
    Rule("susceptibility-weighted or T2* (named so, or gradient echo with TE >= 10 ms)", _t2_star, OTHER),
    Rule("steady-state free precession (FIESTA, CISS, TrueFISP)", lambda f: f.says(_STEADY_STATE), OTHER),
    Rule("MP2RAGE inversion image (INV1, INV2)", lambda f: f.says(_MP2RAGE_INVERSION), OTHER),
    Rule("STIR (named so, or inversion recovery with TI < 400 ms and TE >= 30 ms)",
         lambda f: f.says(_STIR) or (_below(f.ti, 400) and _at_least(f.te, 30)), OTHER),
    # acquisition physics, where it is decisive: it vetoes a description that contradicts it
    Rule("inversion recovery, TI >= 1500 ms, TE >= 60 ms (FLAIR)",
         lambda f: _at_least(f.ti, 1500) and _at_least(f.te, 60), "t2f"),
    Rule("inversion recovery (TI not recorded), TE >= 80 ms, TR >= 6000 ms (FLAIR)",
         lambda f: f.inverted and f.ti is None and _at_least(f.te, 80) and _at_least(f.tr, 6000), "t2f"),
    Rule("inversion recovery, TI < 1500 ms, TE < 30 ms (T1: MPRAGE, IR-SPGR, T1 FLAIR)",
         lambda f: _below(f.ti, 1500) and _below(f.te, 30), T1),
    Rule("TE < 30 ms, TR < 1200 ms (T1: spin echo or spoiled gradient echo)",
         lambda f: _below(f.te, 30) and _below(f.tr, 1200), T1),
    Rule("named FLAIR but TE < 30 ms (T1 FLAIR: a T2-FLAIR has a long TE)",
         lambda f: f.says(_FLAIR_WORD) and _below(f.te, 30), T1),
    Rule("proton density or dual echo (named so, or TR >= 2000 ms, 8 <= TE < 30 ms, no inversion)",
         lambda f: f.says(_PROTON_DENSITY) or (not f.inverted and _at_least(f.tr, 2000)
                                                and _at_least(f.te, 8) and _below(f.te, 30)), OTHER),
    Rule("TE >= 60 ms, TR >= 2000 ms, named FLAIR, no TI recorded (FLAIR)",
         lambda f: f.says(_FLAIR_WORD) and f.ti is None and _at_least(f.te, 60) and _at_least(f.tr, 2000), "t2f"),
    Rule("TE >= 60 ms, TR >= 2000 ms, no inversion (T2)",
         lambda f: not f.inverted and _at_least(f.te, 60) and _at_least(f.tr, 2000), "t2w"),
    # keywords, where the physics is absent or not decisive
    Rule("named T1 with FLAIR, TIRM or dark-fluid (T1 FLAIR)", lambda f: f.named == T1 and f.says(_FLAIR_WORD), T1),
    Rule("named FLAIR after contrast, neither T1 nor T2, TE not decisive (T1 FLAIR or T2-FLAIR?)",
         _flair_after_contrast_unsure, OTHER),
    Rule("named FLAIR", lambda f: f.named == "t2f", "t2f"),
    Rule("named T1", lambda f: f.named == T1, T1),
    Rule("named T2", lambda f: f.named == "t2w", "t2w"),
)

_SAYS = {T1: "T1", "t2f": "FLAIR", "t2w": "T2"}


def _overruled(f: SeriesFacts, kind: str) -> str:
    """A note for the reason when the name states another sequence than the one decided."""
    family = T1 if kind in (T1, "t1n", "t1c") else kind
    if kind == OTHER or f.named is None or f.named == family:
        return ""
    return f"; the {f.named_from} says {_SAYS[f.named]}, the acquisition decides"


def _contrast(f: SeriesFacts, reason: str, use_agent: bool) -> SeriesDecision:
    """Split a T1 into t1n / t1c: the words of its name first, then ContrastBolusAgent."""
    agent = f.series.contrast_agent
    if f.contrast == "pre":
        note = f" (contrast agent '{agent}' recorded all the same)" if agent else ""
        return SeriesDecision("t1n", f"{reason}; {f.contrast_from} says pre-contrast{note}")
    if f.contrast == "post":
        return SeriesDecision("t1c", f"{reason}; {f.contrast_from} says post-contrast")
    if agent and use_agent:
        return SeriesDecision("t1c", f"{reason}; contrast agent '{agent}'")
    if agent:
        return SeriesDecision(T1, f"{reason}; contrast agent '{agent}' recorded for the whole exam, "
                                  "so contrast not stated")
    if f.contrast == "both":
        return SeriesDecision(T1, f"{reason}; {f.contrast_from} names both phases, contrast not stated")
    return SeriesDecision(T1, f"{reason}; contrast not stated")


def _classify(series: SeriesInfo, use_agent: bool = True) -> SeriesDecision:
    facts = SeriesFacts.of(series)
    for rule in RULES:
        if rule.test(facts):
            reason = rule.name + _overruled(facts, rule.kind)
            if rule.kind != T1:
                return SeriesDecision(rule.kind, reason)
            return _contrast(facts, reason, use_agent)
    return SeriesDecision(OTHER, "no rule matched (name and TR/TE/TI do not identify it)")


def classify_series(series: SeriesInfo) -> SeriesDecision:
    """The kind of one series, with the rule that decided it. T1 series are further split
    into t1c / t1n when the description (or protocol name) or the contrast agent says so."""
    return _classify(series)


# --- study ----------------------------------------------------------------------------------------

@dataclass
class StudySequences:
    """The outcome for a study: ``series`` maps each identified sequence to a series UID;
    ``problem`` says why the study cannot be segmented (None when all four are there)."""

    series: dict[str, str]
    decisions: dict[str, SeriesDecision] = field(default_factory=dict)
    problem: str | None = None


def _agent_for_whole_exam(series: Sequence[SeriesInfo]) -> bool:
    """ContrastBolusAgent recorded on every series, or on the first one acquired (a localizer
    or the first sequence, before any injection): registered for the exam, not per series."""
    if len(series) < 2:
        return False
    if all(s.contrast_agent for s in series):
        return True
    numbered = [s for s in series if s.series_number is not None]
    return bool(numbered) and bool(min(numbered, key=lambda s: s.series_number or 0).contrast_agent)


def _label(info: SeriesInfo) -> str:
    return f"series {info.series_number}" if info.series_number is not None else info.uid


def _on_wrong_side(undecided: SeriesInfo, known: SeriesInfo, known_kind: str) -> bool:
    """Whether the series numbers put an undecided T1 after a post-contrast T1 (``known_kind``
    t1c) or before a pre-contrast one (t1n); False when a number is missing."""
    if undecided.series_number is None or known.series_number is None:
        return False
    if known_kind == "t1c":
        return undecided.series_number > known.series_number
    return undecided.series_number < known.series_number


def identify_sequences(series: Sequence[SeriesInfo]) -> StudySequences:
    """Assign at most one series to each of t1n, t1c, t2w, t2f."""
    use_agent = not _agent_for_whole_exam(series)
    infos = {s.uid: s for s in series}
    decisions = {s.uid: _classify(s, use_agent) for s in series}
    candidates: dict[str, list[str]] = {k: [] for k in (*SEQUENCES, T1)}
    for uid, decision in decisions.items():
        if decision.kind in candidates:
            candidates[decision.kind].append(uid)
    # a single undecided T1 next to a post-contrast T1 (and no pre-contrast one) is the pre-contrast
    # T1, and the other way round, unless the series numbers put it on the wrong side of it
    for known, missing in (("t1c", "t1n"), ("t1n", "t1c")):
        if len(candidates[T1]) != 1 or not candidates[known] or candidates[missing]:
            continue
        uid = candidates[T1][0]
        phase = "post" if known == "t1c" else "pre"
        wrong_side = [k for k in candidates[known] if _on_wrong_side(infos[uid], infos[k], known)]
        if wrong_side:
            decisions[uid] = SeriesDecision(T1, f"{decisions[uid].reason}; acquired "
                                                f"{'after' if known == 't1c' else 'before'} the {phase}-contrast T1 "
                                                f"({_label(infos[wrong_side[0]])}), so not taken for {missing}")
            continue
        candidates[T1].pop()
        candidates[missing].append(uid)
        others = ", ".join(_label(infos[k]) for k in candidates[known])
        decisions[uid] = SeriesDecision(missing, f"{decisions[uid].reason}; the other T1 ({others}) is "
                                                 f"{phase}-contrast")
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
