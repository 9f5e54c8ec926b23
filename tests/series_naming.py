"""Real-world MR brain series naming, by vendor: a table of studies for the sequence classifier
(data only; tests/test_dicom_sequences.py and bench/sequence_identification.py read it).

Every study lists its series in acquisition order (series number = position, from 1) with:

* ``kind``: what the classifier must decide for the series within its study: t1n, t1c, t2w,
  t2f, T1 (T1-weighted, contrast undecided) or OTHER;
* ``truth``: what the series really is. It differs from ``kind`` only where a person reading
  the same attributes could not tell either, and then ``why`` says so;
* the attributes the classifier reads (SeriesInfo fields: TR/TE/TI in ms, ScanningSequence,
  ImageType, ContrastBolusAgent, ProtocolName, number of instances, b-value).

and the expected study outcome: the series number of each of t1n/t1c/t2w/t2f, or
:class:`Refused` with the expected problem and why refusing is right.

Provenance of the naming styles (strings are facts seen in public material; no code copied):

* GE: a public GE protocol sheet ("3Pl-Locs/Cal", "SAG T1 FLAIR" FSE-XL TR 2100 TE 24 TI 750,
  "Axial T2 FRFSE" TR 2717 TE 85, "Axial T2 FLAIR" TR 8000 TE 120 TI 2000, "T1 SPGR IR PREPPED"
  TI 450); a public mapping of a GE/Siemens glioma cohort's series descriptions ("OAx T1 FLAIR",
  "Ax T1,Flair +C", "Sag CUBE T1 +C", "AX T2 FRFSE", "OAx T2 FLAIR+C", "3-Pl T2* FGRE",
  "OAx DWI Asset", "ASSET Calibration", "Exponential Apparent Diffusion Coefficient");
  heudiconv heuristics of PPMI/NACC ("SAG FSPGR BRAVO", "AX T1 SE C+", "SAG CUBE FLAIR",
  "Sag T1 FLAIR", "Ax 3D SPGR T1", "STRUC BRAVO SAG3D"); GE CUBE names in public repos
  ("Sag CUBE T2FLAIR", "Ax 3D Cube FLAIR", "T1 Bravo Stealth (Pre)"); UPENN-GBM (TCIA) series
  descriptions quoted in a public report ("AX T1 PRE", "AX T1 POST", "t1 axial stealth-post",
  "T1 MPRAGE SAG ISO post gad"). GE's ProtocolName is the exam protocol ("BRAIN TUMOR W/WO"),
  the same on every series of the exam.
* Siemens: product protocol names used across public BIDS heuristics ("t1_mprage_sag_p2_iso",
  "t2_space_dark-fluid_sag_p2_iso", "t2_tirm_tra_dark-fluid", "t2_tse_tra_320_p2",
  "ep2d_diff_3scan_trace_p2" and its "_ADC"/"_TRACEW", "AAHead_Scout_64ch-head-coil",
  "t2_swi_tra_p2_2mm" with "Mag_Images", "Pha_Images", "mIP_Images(SW)", "SWI_Images",
  "PhoenixZIPReport", "csi_se_30_fast", "TOF_3D_multi-slab" and "_MIP_SAG",
  "pd+t2_tse_tra_p2_3mm", "t2_tirm_tra_dark-fluid NO BLADE", "t1_tirm_tra_dark-fluid" and
  "T1 TIR cor P3" as post-contrast T1); "t1_mprage_sag_p2_iso_KM" and "t2_flair_sag_p2_iso" from a
  public viewer's documentation; the German conventions ("KM", "mit/nach KM" post-contrast,
  "vor KM", "ohne KM", "nativ" pre-contrast) from a public German radiology viewer's manual; 3D
  FLAIR SPACE TR 5000 TE 386 TI 1800 from a public protocol simulator.
* Philips: public repos and heuristics ("sT1W_3D_TFE", "T1W_3D_FFE AX", "VsT1W_3D_TFE+GD SENSE",
  "sT1W_3D_TFE_PRE_GD", "sT1W_3D_TFE_AX PRE", "CS sag sT1W_3D_TFE nativ", "eT1W_SE",
  "eT2W_TSE_DRIVE_HR", "eFLAIR_longTR_SPIR", "eSTIR_longTE", "T2W_FLAIR", "FLAIR_LongTR AX",
  "3D_Brain_VIEW_FLAIR_SAG", "WIPcs_3D_Brain_VIEW_FLAIR_SHC", "WIPcs_T1W_3D_TFE_32channel",
  "WIPhperf120long" (a DCE series), "FLAIR_AX_CE_SENSE" (FLAIR after contrast)). Philips reports
  the TR of a 3D TFE as the readout TR (about 8 ms) and writes TI 0 when there is none.
* Canon (Toshiba) and Hitachi: the names follow the vendors' sequence family names (SE, FSE,
  FE/FFE, FLAIR, MPRAGE; Hitachi SE, FSE, FLAIR, GE) as the vendor comparison tables of MR
  acronyms give them, in the forms listed in this project's issue ("T1_SE_AX", "FLAIR_AX",
  "T1 3D MPRAGE + C", "T1W_FFE", "T1W_SE", "T2W_FSE", "T1 SE Gd"); they are not verified against
  DICOM dumps. Canon reports a 3D MPRAGE's TR as the readout TR too.
* Times: T1 SE TR 450-650 TE 9-15; T1 FLAIR TR 2000-2200 TE 9-24 TI 750-860; MPRAGE TR 1900-2300
  TE 2.3-3 TI 900; BRAVO/IR-FSPGR TR 8 TE 3 TI 450; T2 TSE/FSE TR 2700-6000 TE 80-105; 2D FLAIR
  TR 8000-11000 TE 80-140 TI 2000-2800; 3D FLAIR TR 4800-6000 TE 130-395 TI 1650-1850 (the
  MS-SMART multi-vendor protocol table, BMJ Open, gives the same ranges).
* De-identified studies: the DICOM PS3.15 basic confidentiality profile removes SeriesDescription
  and ProtocolName, so the physics has to decide.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lib.dicom.sequences import OTHER, T1, SeriesInfo


class Row(NamedTuple):
    """One series of a study."""

    description: str
    kind: str  # the classifier's decision within the study
    truth: str  # what the series is
    attributes: dict[str, Any]  # further SeriesInfo fields
    why: str = ""  # why a person could not tell either, where kind != truth


class Refused(NamedTuple):
    """The study must be refused: ``problem`` is part of the expected problem text."""

    problem: str
    category: str  # "ambiguous" (two candidates), "missing" (not acquired), "undecidable"
    why: str


class Study(NamedTuple):
    name: str
    vendor: str
    rows: tuple[Row, ...]
    outcome: dict[str, int] | Refused  # series number of each sequence, or the refusal


def row(description: str, kind: str, acquisition: dict[str, Any], truth: str | None = None, why: str = "",
        **attributes: Any) -> Row:
    """A series: ``truth`` defaults to ``kind``; ``attributes`` add to (or replace) the acquisition."""
    return Row(description, kind, truth or kind, {**acquisition, **attributes}, why)


def acquisition(tr: float | None, te: float | None, ti: float | None = None, seq: tuple[str, ...] = ("SE",),
                instances: int = 26, image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "OTHER")) -> dict[str, Any]:
    return {"repetition_time": tr, "echo_time": te, "inversion_time": ti, "scanning_sequence": seq,
            "instances": instances, "image_type": image_type}


# --- acquisitions ---------------------------------------------------------------------------------

GE = ("ORIGINAL", "PRIMARY", "OTHER")
GE_DERIVED = ("DERIVED", "SECONDARY", "REFORMATTED")
SIEMENS = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")
SIEMENS_DERIVED = ("DERIVED", "SECONDARY", "MPR", "ND", "NORM")
PHILIPS_SE = ("ORIGINAL", "PRIMARY", "M_SE", "M", "SE")
PHILIPS_FFE = ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE")
PHILIPS_IR = ("ORIGINAL", "PRIMARY", "M_IR", "M", "IR")
PLAIN = ("ORIGINAL", "PRIMARY")
DERIVED = ("DERIVED", "PRIMARY")

GE_LOC = acquisition(5.2, 1.7, seq=("GR",), instances=15, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
GE_CAL = acquisition(150, 1.1, seq=("GR",), instances=40)
GE_T1_FLAIR = acquisition(2100, 24, 750, ("SE", "IR"), 28)            # 3T FSE-XL T1 FLAIR
GE_T1_FLAIR_15T = acquisition(2000, 9, 750, ("SE", "IR"), 24)
GE_T1_SE = acquisition(550, 9, seq=("SE",))
GE_T1_SE_15T = acquisition(450, 11, seq=("SE",), instances=22)
GE_T2_FRFSE = acquisition(2717, 85, seq=("SE",), instances=28)
GE_T2_FSE = acquisition(5000, 102, seq=("SE",), instances=28)
GE_FLAIR = acquisition(8000, 120, 2000, ("SE", "IR"), 28)
GE_FLAIR_15T = acquisition(10002, 147, 2200, ("SE", "IR"), 24)
GE_BRAVO = acquisition(8.2, 3.2, 450, ("GR",), 176)
GE_SPGR_15T = acquisition(25, 5, seq=("GR",), instances=124)
GE_CUBE_FLAIR = acquisition(6000, 130, 1850, ("SE", "IR"), 180)
GE_CUBE_T1 = acquisition(600, 14, seq=("SE",), instances=180)
GE_DWI = dict(acquisition(8000, 80, seq=("EP",), instances=54), diffusion_b_value=1000)
GE_ADC = acquisition(8000, 80, seq=("EP",), instances=27, image_type=("DERIVED", "PRIMARY", "ADC"))
GE_T2_STAR = acquisition(650, 20, seq=("GR",))
GE_SWAN = acquisition(40, 25, seq=("GR",), instances=120)
GE_PERFUSION = acquisition(1500, 30, seq=("EP",), instances=1200)
GE_REFORMAT = acquisition(8.2, 3.2, 450, ("GR",), 60, GE_DERIVED)
GE_SCREEN_SAVE = acquisition(None, None, seq=(), instances=1, image_type=("DERIVED", "SECONDARY", "SCREEN SAVE"))

SI_LOC = acquisition(8.6, 4, seq=("GR",), instances=9, image_type=SIEMENS)
SI_SCOUT = acquisition(3.2, 1.4, seq=("GR",), instances=128, image_type=SIEMENS)
SI_MPRAGE = acquisition(2300, 2.32, 900, ("GR", "IR"), 176, SIEMENS)
SI_MPRAGE_TRA = acquisition(1900, 2.5, 900, ("GR", "IR"), 160, SIEMENS)
SI_MPR = acquisition(2300, 2.32, 900, ("GR", "IR"), 60, SIEMENS_DERIVED)
SI_T1_SE = acquisition(550, 9.1, seq=("SE",), instances=25, image_type=SIEMENS)
SI_T1_TIRM = acquisition(2000, 9.7, 860, ("SE", "IR"), 25, SIEMENS)
SI_T2_TSE = acquisition(6000, 98, seq=("SE",), instances=25, image_type=SIEMENS)
SI_T2_TIRM = acquisition(9000, 81, 2500, ("SE", "IR"), 25, SIEMENS)
SI_SPACE_FLAIR = acquisition(5000, 387, 1800, ("SE", "IR"), 176, SIEMENS)
SI_DWI = dict(acquisition(5000, 89, seq=("EP",), instances=75, image_type=SIEMENS), diffusion_b_value=1000)
SI_DWI_MAP = acquisition(5000, 89, seq=("EP",), instances=25, image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
SI_HEMO = acquisition(700, 20, seq=("GR",), instances=25, image_type=SIEMENS)
SI_SWI = acquisition(28, 20, seq=("GR",), instances=88, image_type=SIEMENS)
SI_SWI_MAP = acquisition(28, 20, seq=("GR",), instances=80, image_type=("DERIVED", "PRIMARY", "MNIP"))
SI_TOF = acquisition(22, 3.6, seq=("GR",), instances=160, image_type=SIEMENS)
SI_PERFUSION = acquisition(1500, 30, seq=("EP",), instances=1250, image_type=SIEMENS)
SI_VIBE = acquisition(5.2, 2.1, seq=("GR",), instances=144, image_type=SIEMENS)
SI_PD_T2 = acquisition(3000, 11, seq=("SE",), instances=50, image_type=SIEMENS)
SI_CSI = acquisition(1700, 30, seq=("SE",), instances=1, image_type=SIEMENS)
SI_REPORT = acquisition(None, None, seq=(), instances=1, image_type=("ORIGINAL", "PRIMARY"))

PH_SURVEY = acquisition(11, 4.6, seq=("GR",), instances=9, image_type=PHILIPS_FFE)
PH_TFE = acquisition(8.1, 3.7, 0, ("GR",), 180, PHILIPS_FFE)      # TI 0: no inversion written
PH_FFE_3D = acquisition(9, 4.6, seq=("GR",), instances=150, image_type=PHILIPS_FFE)
PH_T1_SE = acquisition(550, 15, seq=("SE",), instances=24, image_type=PHILIPS_SE)
PH_T2_TSE = acquisition(3000, 80, seq=("SE",), instances=24, image_type=PHILIPS_SE)
PH_FLAIR = acquisition(11000, 140, 2800, ("SE", "IR"), 24, PHILIPS_IR)
PH_FLAIR_3D = acquisition(4800, 340, 1650, ("SE", "IR"), 180, PHILIPS_IR)
PH_STIR = acquisition(4000, 80, 180, ("SE", "IR"), 24, PHILIPS_IR)
PH_DWI = dict(acquisition(3000, 90, seq=("EP",), instances=48, image_type=PHILIPS_SE), diffusion_b_value=1000)
PH_ADC = acquisition(3000, 90, seq=("EP",), instances=24, image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
PH_T2_STAR = acquisition(700, 23, seq=("GR",), instances=24, image_type=PHILIPS_FFE)
PH_SWIP = acquisition(31, 7.2, seq=("GR",), instances=260, image_type=PHILIPS_FFE)
PH_DCE = acquisition(4, 2, seq=("GR",), instances=1200, image_type=PHILIPS_FFE)

CA_LOC = acquisition(5, 2, seq=("GR",), instances=15, image_type=PLAIN)
CA_T1_SE = acquisition(500, 12, seq=("SE",), instances=24, image_type=PLAIN)
CA_T1_FFE = acquisition(250, 2.3, seq=("GR",), instances=24, image_type=PLAIN)
CA_T2_FSE = acquisition(4500, 100, seq=("SE",), instances=24, image_type=PLAIN)
CA_FLAIR = acquisition(9000, 100, 2500, ("SE", "IR"), 24, PLAIN)
CA_MPRAGE = acquisition(7.5, 3.2, 900, ("GR", "IR"), 160, PLAIN)
CA_DWI = dict(acquisition(5000, 90, seq=("EP",), instances=48, image_type=PLAIN), diffusion_b_value=1000)
CA_ADC = acquisition(5000, 90, seq=("EP",), instances=24, image_type=DERIVED)
CA_T2_STAR = acquisition(600, 20, seq=("GR",), instances=24, image_type=PLAIN)

HI_SCOUT = acquisition(30, 6, seq=("GR",), instances=9, image_type=PLAIN)
HI_T1_SE = acquisition(500, 14, seq=("SE",), instances=20, image_type=PLAIN)
HI_T2_FSE = acquisition(4500, 105, seq=("SE",), instances=20, image_type=PLAIN)
HI_FLAIR = acquisition(8000, 110, 2200, ("SE", "IR"), 20, PLAIN)
HI_DWI = dict(acquisition(5000, 95, seq=("EP",), instances=40, image_type=PLAIN), diffusion_b_value=1000)
HI_ADC = acquisition(5000, 95, seq=("EP",), instances=20, image_type=DERIVED)
HI_T2_STAR = acquisition(700, 25, seq=("GR",), instances=20, image_type=PLAIN)

NONE = acquisition(None, None, seq=())  # attributes removed: only names (and ImageType) are left
NONE_LOCALIZER = acquisition(None, None, seq=(), instances=15, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))

NO_CONTRAST_INFO = "no contrast agent and no pre/post word, nothing to tell pre- from post-contrast"


# --- studies --------------------------------------------------------------------------------------

def _ge(name: str, protocol: str, *rows: Row, outcome: dict[str, int] | Refused) -> Study:
    """A GE study: ProtocolName is the exam protocol, the same on every series."""
    return Study(name, "GE", tuple(r._replace(attributes={**r.attributes, "protocol": protocol}) for r in rows),
                 outcome)


def _with_protocol(*rows: Row) -> tuple[Row, ...]:
    """Siemens and Philips: ProtocolName is the series' protocol (the description without suffixes)."""
    return tuple(r._replace(attributes={"protocol": r.description, **r.attributes}) for r in rows)


STUDIES: tuple[Study, ...] = (
    # --- GE ---------------------------------------------------------------------------------------
    _ge("GE-01 3T tumour protocol, agent not recorded", "BRAIN TUMOR W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("ASSET Calibration", OTHER, GE_CAL),
        row("SAG T1 FLAIR", "t1n", GE_T1_FLAIR),
        row("AX T2 FRFSE", "t2w", GE_T2_FRFSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("Ax DWI 1000b", OTHER, GE_DWI),
        row("Exponential Apparent Diffusion Coefficient", OTHER, GE_ADC),
        row("AX T1 POST", "t1c", GE_T1_SE),
        outcome={"t1n": 3, "t1c": 8, "t2w": 4, "t2f": 5}),
    _ge("GE-02 3T BRAVO pre and post, agent recorded after injection", "7.1.4 BRAIN TUMOR",
        row("3Pl-Locs/Cal", OTHER, GE_LOC),
        row("Axial T2 FRFSE", "t2w", GE_T2_FRFSE),
        row("Axial T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI 1000b", OTHER, GE_DWI),
        row("AX T2* GRE", OTHER, GE_T2_STAR),
        row("SAG FSPGR BRAVO", "t1n", GE_BRAVO),
        row("SAG FSPGR BRAVO +C", "t1c", GE_BRAVO, contrast_agent="MULTIHANCE"),
        row("AX REFORMAT BRAVO +C", OTHER, GE_REFORMAT, contrast_agent="MULTIHANCE"),
        row("COR REFORMAT BRAVO +C", OTHER, GE_REFORMAT, contrast_agent="MULTIHANCE"),
        outcome={"t1n": 6, "t1c": 7, "t2w": 2, "t2f": 3}),
    _ge("GE-03 post-contrast T1 in three planes", "BRAIN W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("Sag T1 FLAIR", "t1n", GE_T1_FLAIR_15T),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX FLAIR", "t2f", GE_FLAIR_15T),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T1 SE C+", "t1c", GE_T1_SE_15T, contrast_agent="GADAVIST"),
        row("COR T1 SE C+", "t1c", GE_T1_SE_15T, contrast_agent="GADAVIST"),
        row("SAG T1 SE C+", "t1c", GE_T1_SE_15T, contrast_agent="GADAVIST"),
        outcome=Refused("3 series could be t1c", "ambiguous",
                        "three post-contrast T1 (axial, coronal, sagittal): all t1c, and the classifier never "
                        "chooses between candidates")),
    _ge("GE-04 CUBE 3D protocol with DSC perfusion", "BRAIN TUMOR PERFUSION",
        row("3-Plane Loc", OTHER, GE_LOC),
        row("SAG CUBE FLAIR", "t2f", GE_CUBE_FLAIR),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("Ax DWI 1000b", OTHER, GE_DWI),
        row("AX SWAN", OTHER, GE_SWAN),
        row("Sag CUBE T1", "t1n", GE_CUBE_T1),
        row("AX PERFUSION", OTHER, GE_PERFUSION, contrast_agent="GADAVIST"),
        row("Sag CUBE T1 +C", "t1c", GE_CUBE_T1, contrast_agent="GADAVIST"),
        row("rCBV", OTHER, acquisition(1500, 30, seq=("EP",), instances=20, image_type=("DERIVED", "SECONDARY"))),
        row("Screen Save", OTHER, GE_SCREEN_SAVE),
        outcome={"t1n": 6, "t1c": 8, "t2w": 3, "t2f": 2}),
    _ge("GE-05 navigation study, UPENN-GBM style names", "BRAIN STEALTH W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1 PRE", "t1n", GE_T1_SE),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T2* GRE", OTHER, GE_T2_STAR),
        row("t1 axial stealth-post", "t1c", GE_BRAVO),
        outcome={"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),
    _ge("GE-06 'POST FOSSA' is anatomy, not contrast", "ROUTINE BRAIN W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T1 POST FOSSA", "t1n", acquisition(500, 10, seq=("SE",), instances=20)),
        row("AX T1 +C", "t1c", GE_T1_SE),
        outcome={"t1n": 5, "t1c": 6, "t2w": 2, "t2f": 3}),
    _ge("GE-07 T1 FLAIR with commas, T2-FLAIR after contrast", "BRAIN TUMOR",
        row("3-Pl T2* FGRE", OTHER, acquisition(150, 10, seq=("GR",), instances=15)),
        row("OAx T1 FLAIR", "t1n", acquisition(2200, 10, 860, ("SE", "IR"), 28)),
        row("AX T2 FRFSE", "t2w", GE_T2_FRFSE),
        row("OAx DWI Asset", OTHER, GE_DWI),
        row("Ax T1,Flair +C", "t1c", acquisition(2200, 10, 860, ("SE", "IR"), 28)),
        row("OAx T2 FLAIR+C", "t2f", GE_FLAIR),
        outcome={"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 6}),
    _ge("GE-08 T1 FLAIR after contrast named 'AX FLAIR+C': physics decides", "BRAIN W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1 FLAIR", "t1n", acquisition(2000, 9, 800, ("SE", "IR"), 28)),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI", OTHER, GE_DWI),
        row("AX FLAIR+C", "t1c", acquisition(2000, 9, 800, ("SE", "IR"), 28)),
        outcome={"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("GE-09 the study GE-08 with TR/TE/TI and ScanningSequence removed", "GE", (
        row("3-PLANE LOC", OTHER, NONE_LOCALIZER),
        row("AX T1 FLAIR", T1, NONE, truth="t1n", why="the only T1 known; the post-contrast one is not known"),
        row("AX T2 FSE", "t2w", NONE),
        row("AX T2 FLAIR", "t2f", NONE),
        row("AX DWI", OTHER, NONE),
        row("AX FLAIR+C", OTHER, NONE, truth="t1c",
            why="a FLAIR after contrast, neither T1 nor T2 named and no TE: sites acquire both a T1 FLAIR and a "
                "T2-FLAIR after contrast"),
    ), Refused("no t1c series", "undecidable", "'AX FLAIR+C' without TE can be a T1 FLAIR or a T2-FLAIR")),
    _ge("GE-10 terse names, exam protocol 'W/WO CONTRAST'", "ROUTINE BRAIN W/WO CONTRAST",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1", "t1n", GE_T1_SE_15T),
        row("AX T2", "t2w", acquisition(4000, 95, seq=("SE",), instances=22)),
        row("AX FLAIR", "t2f", GE_FLAIR_15T),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T1 +C", "t1c", GE_T1_SE_15T),
        outcome={"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    _ge("GE-11 1.5T, TCGA-GBM era names, 'pre gd'", "BRAIN",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1 pre gd", "t1n", GE_T1_SE_15T),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX FLAIR", "t2f", GE_FLAIR_15T),
        row("AX T2* GRE", OTHER, acquisition(800, 20, seq=("GR",), instances=22)),
        row("AX DWI", OTHER, GE_DWI),
        row("ADC", OTHER, GE_ADC),
        row("AX T1 POST GD", "t1c", GE_T1_SE_15T, contrast_agent="MAGNEVIST"),
        outcome={"t1n": 2, "t1c": 8, "t2w": 3, "t2f": 4}),
    Study("GE-12 agent registered for the whole exam, pre/post in the names", "GE", tuple(
        r._replace(attributes={**r.attributes, "protocol": "BRAIN TUMOR W/WO", "contrast_agent": "GADAVIST"})
        for r in (
            row("3-PLANE LOC", OTHER, GE_LOC),
            row("AX T1 pre-contrast", "t1n", GE_T1_SE),
            row("AX T2 FSE", "t2w", GE_T2_FSE),
            row("AX T2 FLAIR", "t2f", GE_FLAIR),
            row("AX DWI", OTHER, GE_DWI),
            row("AX T1 post-contrast", "t1c", GE_T1_SE),
        )), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("GE-13 agent registered for the whole exam, names silent", "GE", tuple(
        r._replace(attributes={**r.attributes, "protocol": "BRAIN W/WO", "contrast_agent": "GADAVIST"})
        for r in (
            row("3-PLANE LOC", OTHER, GE_LOC),
            row("AX T1 SE", T1, GE_T1_SE, truth="t1n", why="the agent is on every series, the names are silent"),
            row("AX T2 FSE", "t2w", GE_T2_FSE),
            row("AX T2 FLAIR", "t2f", GE_FLAIR),
            row("AX DWI", OTHER, GE_DWI),
            row("SAG FSPGR 3D", T1, GE_BRAVO, truth="t1c", why="the agent is on every series, the names are silent"),
        )), Refused("no t1n series (T1 series without contrast information: 2)", "undecidable",
                    "ContrastBolusAgent is on every series, the localizer too: it was registered for the exam")),
    _ge("GE-14 one 3D gradient-echo T1 and one spin-echo T1, no contrast information", "BRAIN W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("SAG 3D BRAVO", T1, GE_BRAVO, truth="t1n", why=NO_CONTRAST_INFO),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T1 SE", T1, GE_T1_SE, truth="t1c", why=NO_CONTRAST_INFO),
        outcome=Refused("no t1c series (T1 series without contrast information: 2)", "undecidable",
                        "sites do a 3D T1 before and a spin-echo T1 after contrast, and the other way round")),
    _ge("GE-15 no T2-FLAIR acquired, a T1 FLAIR only", "BRAIN W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("SAG T1 FLAIR", "t1n", GE_T1_FLAIR),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX DWI", OTHER, GE_DWI),
        row("AX T1 FLAIR +C", "t1c", GE_T1_FLAIR),
        outcome=Refused("no t2f series", "missing", "no T2-FLAIR was acquired; a T1 FLAIR is not one")),
    _ge("GE-16 'FLAIR T1' and 'FLAIR T1 +C'", "BRAIN TUMOR W/WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("FLAIR T1", "t1n", GE_T1_FLAIR),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("FLAIR T1 +C", "t1c", GE_T1_FLAIR),
        outcome={"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
    _ge("GE-17 1.5T, 3D SPGR after contrast, 3D Cube FLAIR", "BRAIN W+WO",
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1 SE", "t1n", GE_T1_SE_15T),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("Ax 3D Cube FLAIR", "t2f", GE_CUBE_FLAIR),
        row("Ax 3D SPGR T1 +C", "t1c", GE_SPGR_15T),
        outcome={"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),

    # --- Siemens ----------------------------------------------------------------------------------
    Study("SI-01 3T product names, the same MPRAGE run again after contrast", "Siemens", _with_protocol(
        row("AAHead_Scout_64ch-head-coil", OTHER, SI_SCOUT),
        row("AAHead_Scout_64ch-head-coil_MPR_sag", OTHER, SI_MPR),
        row("t1_mprage_sag_p2_iso", "t1n", SI_MPRAGE),
        row("t2_tse_tra_320_p2", "t2w", SI_T2_TSE),
        row("t2_space_dark-fluid_sag_p2_iso", "t2f", SI_SPACE_FLAIR),
        row("ep2d_diff_3scan_trace_p2", OTHER, SI_DWI),
        row("ep2d_diff_3scan_trace_p2_ADC", OTHER, SI_DWI_MAP),
        row("t1_mprage_sag_p2_iso", "t1c", SI_MPRAGE, contrast_agent="Gadovist"),
        row("t1_mprage_sag_p2_iso_MPR_tra", OTHER, SI_MPR, contrast_agent="Gadovist"),
        row("t1_mprage_sag_p2_iso_MPR_cor", OTHER, SI_MPR, contrast_agent="Gadovist"),
    ), {"t1n": 3, "t1c": 8, "t2w": 4, "t2f": 5}),
    Study("SI-02 German site: 'nativ' and 'KM', no agent", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("t1_se_tra_nativ", "t1n", SI_T1_SE),
        row("ep2d_diff_3scan_trace_p2", OTHER, SI_DWI),
        row("ep2d_diff_3scan_trace_p2_TRACEW", OTHER, SI_DWI_MAP),
        row("t2_fl2d_tra_hemo", OTHER, SI_HEMO),
        row("t1_se_tra_KM", "t1c", SI_T1_SE),
    ), {"t1n": 4, "t1c": 8, "t2w": 2, "t2f": 3}),
    Study("SI-03 German site: 'T1 vor KM' and 'T1 nach KM'", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("T2 TSE tra", "t2w", SI_T2_TSE),
        row("T2 FLAIR tra", "t2f", acquisition(8500, 85, 2440, ("SE", "IR"), 25, SIEMENS)),
        row("T1 SE tra vor KM", "t1n", SI_T1_SE),
        row("DWI", OTHER, SI_DWI),
        row("T1 SE tra nach KM", "t1c", SI_T1_SE, contrast_agent="Dotarem"),
    ), {"t1n": 4, "t1c": 6, "t2w": 2, "t2f": 3}),
    Study("SI-04 German site: 'ohne KM' and 'mit KM', a subtraction", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_se_tra ohne KM", "t1n", SI_T1_SE),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("t1_se_tra mit KM", "t1c", SI_T1_SE, contrast_agent="Clariscan"),
        row("t1_se_tra mit KM_SUB", OTHER, SI_T1_SE, contrast_agent="Clariscan",
            image_type=("DERIVED", "PRIMARY", "M", "SUBTRACTION")),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
    Study("SI-05 unlabelled spin-echo T1 before 't1_mprage_tra_KM'", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_se_tra", "t1n", SI_T1_SE),
        row("t2_tse_tra_512", "t2w", SI_T2_TSE),
        row("t2_space_dark-fluid_sag_p2_iso", "t2f", SI_SPACE_FLAIR),
        row("ep2d_diff_3scan_trace_p2", OTHER, SI_DWI),
        row("t1_mprage_tra_KM", "t1c", SI_MPRAGE_TRA),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("SI-06 DSC perfusion and a VIBE after contrast", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_se_tra_nativ", "t1n", SI_T1_SE),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("ep2d_perf", OTHER, SI_PERFUSION, contrast_agent="Gadovist"),
        row("RELCBV", OTHER, acquisition(1500, 30, seq=("EP",), instances=20, image_type=("DERIVED", "PRIMARY"))),
        row("t1_vibe_fs_tra_KM", "t1c", SI_VIBE, contrast_agent="Gadovist"),
        row("t1_vibe_fs_tra_KM_MPR_cor", OTHER, SI_VIBE, contrast_agent="Gadovist", image_type=SIEMENS_DERIVED),
    ), {"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),
    Study("SI-07 T1 TIRM dark-fluid (a T1 FLAIR) under the same name before and after", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_tirm_tra_dark-fluid", "t1n", SI_T1_TIRM),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("ep2d_diff_3scan_trace_p2", OTHER, SI_DWI),
        row("t1_tirm_tra_dark-fluid", "t1c", SI_T1_TIRM, contrast_agent="Gadovist"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("SI-08 T1 and T2 TIRM with TR/TE/TI removed", "Siemens", _with_protocol(
        row("t1_tirm_tra_dark-fluid", "t1n", NONE),
        row("t2_tse_tra", "t2w", NONE),
        row("t2_tirm_tra_dark-fluid", "t2f", NONE),
        row("t1_tirm_tra_dark-fluid", "t1c", NONE, contrast_agent="Gadovist"),
        row("ep2d_diff_3scan_trace_p2_ADC", OTHER, NONE, image_type=()),
    ), {"t1n": 1, "t1c": 4, "t2w": 2, "t2f": 3}),
    Study("SI-09 reformats of the post-contrast MPRAGE, one without ImageType", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_mprage_sag_nativ", "t1n", SI_MPRAGE),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_flair_sag_p2_iso", "t2f", acquisition(5000, 395, 1800, ("SE", "IR"), 176, SIEMENS)),
        row("t1_mprage_sag_KM", "t1c", SI_MPRAGE),
        row("t1_mprage_sag_KM_MPR_tra", OTHER, SI_MPR, image_type=()),
        row("t1_mprage_sag_KM_MPR_cor", OTHER, SI_MPR),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
    Study("SI-10 1.5T with TOF, the SWI family and spectroscopy", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_se_tra_pre", "t1n", SI_T1_SE),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid NO BLADE", "t2f", SI_T2_TIRM),
        row("TOF_3D_multi-slab", OTHER, SI_TOF),
        row("TOF_3D_multi-slab_MIP_SAG", OTHER, SI_TOF, instances=36, image_type=("DERIVED", "SECONDARY", "MIP")),
        row("Mag_Images", OTHER, SI_SWI, protocol="t2_swi_tra_p2_2mm"),
        row("Pha_Images", OTHER, SI_SWI, protocol="t2_swi_tra_p2_2mm"),
        row("mIP_Images(SW)", OTHER, SI_SWI_MAP, protocol="t2_swi_tra_p2_2mm"),
        row("SWI_Images", OTHER, SI_SWI_MAP, protocol="t2_swi_tra_p2_2mm"),
        row("csi_se_30_fast", OTHER, SI_CSI),
        row("t1_se_tra_post", "t1c", SI_T1_SE),
    ), {"t1n": 2, "t1c": 12, "t2w": 3, "t2f": 4}),
    Study("SI-11 English site: 'T1 pre Gd' and 'T1 post Gd'", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("T1 pre Gd", "t1n", SI_MPRAGE),
        row("T2 TSE AX", "t2w", SI_T2_TSE),
        row("FLAIR AX", "t2f", SI_T2_TIRM),
        row("T1 post Gd", "t1c", SI_MPRAGE, contrast_agent="Gadovist"),
        row("T1 post Gd_MPR_tra", OTHER, SI_MPR, contrast_agent="Gadovist"),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
    Study("SI-12 DTI maps, a PD/T2 dual echo and the protocol report", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("pd+t2_tse_tra_p2_3mm", OTHER, SI_PD_T2),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("t1_se_tra_nativ", "t1n", SI_T1_SE),
        row("ep2d_diff_mddw_20_p2", OTHER, SI_DWI),
        row("ep2d_diff_mddw_20_p2_FA", OTHER, SI_DWI_MAP),
        row("ep2d_diff_mddw_20_p2_ColFA", OTHER, SI_DWI_MAP),
        row("FA", OTHER, NONE, image_type=()),
        row("t1_se_tra_KM", "t1c", SI_T1_SE),
        row("PhoenixZIPReport", OTHER, SI_REPORT),
    ), {"t1n": 5, "t1c": 10, "t2w": 3, "t2f": 4}),
    Study("SI-13 custom 't1_flair_tra' and 't1_flair_tra_post'", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t1_flair_tra", "t1n", SI_T1_TIRM),
        row("t2_tse_tra", "t2w", SI_T2_TSE),
        row("t2_flair_tra", "t2f", SI_T2_TIRM),
        row("t1_flair_tra_post", "t1c", SI_T1_TIRM),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),

    # --- Philips ----------------------------------------------------------------------------------
    Study("PH-01 3T 3D TFE: 'PRE_GD' and '+GD'", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("sT1W_3D_TFE_PRE_GD", "t1n", PH_TFE),
        row("T2W_TSE", "t2w", PH_T2_TSE),
        row("3D_Brain_VIEW_FLAIR_SAG", "t2f", PH_FLAIR_3D),
        row("DWI_SENSE", OTHER, PH_DWI),
        row("DWI_SENSE_ADC", OTHER, PH_ADC),
        row("VsT1W_3D_TFE+GD SENSE", "t1c", PH_TFE),
    ), {"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),
    Study("PH-02 1.5T spin echo with CLEAR, unlabelled pre-contrast T1", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("T1W_SE_CLEAR", "t1n", PH_T1_SE),
        row("T2W_TSE", "t2w", PH_T2_TSE),
        row("T2W_FLAIR", "t2f", PH_FLAIR),
        row("DWI", OTHER, PH_DWI),
        row("T1W_SE_CLEAR_GD", "t1c", PH_T1_SE),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("PH-03 ExamCard 'e' names, a STIR, agent recorded after injection", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("eT1W_SE", "t1n", PH_T1_SE),
        row("eT2W_TSE_DRIVE_HR", "t2w", acquisition(3500, 90, seq=("SE",), instances=24, image_type=PHILIPS_SE)),
        row("eFLAIR_longTR_SPIR", "t2f", acquisition(11000, 125, 2800, ("SE", "IR"), 24, PHILIPS_IR)),
        row("eSTIR_longTE", OTHER, PH_STIR),
        row("sT1W_3D_TFE", "t1c", PH_TFE, contrast_agent="GADOVIST"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("PH-04 Compressed SENSE 'nativ', unlabelled post, FLAIR after contrast", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("CS sag sT1W_3D_TFE nativ", "t1n", PH_TFE),
        row("T2W_TSE", "t2w", PH_T2_TSE),
        row("DWI_SENSE", OTHER, PH_DWI),
        row("CS sag sT1W_3D_TFE", "t1c", PH_TFE),
        row("FLAIR_AX_CE_SENSE", "t2f", PH_FLAIR),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 6}),
    Study("PH-05 3D FLAIR VISTA, SWIp and a DCE series", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("sT1W_3D_TFE_AX PRE", "t1n", PH_TFE),
        row("T2W_TSE", "t2w", PH_T2_TSE),
        row("3D FLAIR VISTA", "t2f", PH_FLAIR_3D),
        row("SWIp", OTHER, PH_SWIP),
        row("WIPhperf120long", OTHER, PH_DCE),
        row("T1W_3D_TFE+GD", "t1c", PH_TFE),
    ), {"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),
    Study("PH-06 PPMI style 'T1W_3D_FFE AX', a T2* FFE", "Philips", _with_protocol(
        row("SURVEY", OTHER, PH_SURVEY),
        row("T1W_3D_FFE AX", "t1n", PH_FFE_3D),
        row("T2W_TSE", "t2w", PH_T2_TSE),
        row("T2*W_FFE", OTHER, PH_T2_STAR),
        row("FLAIR_LongTR AX", "t2f", PH_FLAIR),
        row("T1W_3D_FFE AX GD", "t1c", PH_FFE_3D),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 5}),
    Study("PH-07 'WIP' prefixes, agent recorded after injection", "Philips", _with_protocol(
        row("Survey_SHC", OTHER, PH_SURVEY),
        row("WIP T1W_SE", "t1n", PH_T1_SE),
        row("WIP T2W_TSE", "t2w", PH_T2_TSE),
        row("WIPcs_3D_Brain_VIEW_FLAIR_SHC", "t2f", PH_FLAIR_3D),
        row("WIP DWI", OTHER, PH_DWI),
        row("WIPcs_T1W_3D_TFE_32channel", "t1c", PH_TFE, contrast_agent="Dotarem"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("PH-08 descriptions removed, protocol names kept", "Philips", (
        row("", OTHER, PH_SURVEY, protocol="SURVEY"),
        row("", "t1n", PH_TFE, protocol="WIP sT1W_3D_TFE_PRE_GD SENSE"),
        row("", "t2w", PH_T2_TSE, protocol="WIP T2W_TSE SENSE"),
        row("", "t2f", PH_FLAIR, protocol="WIP T2W_FLAIR SENSE"),
        row("", OTHER, PH_DWI, protocol="WIP DWI SENSE"),
        row("", "t1c", PH_TFE, protocol="WIP sT1W_3D_TFE+GD SENSE"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),

    # --- Canon (Toshiba) --------------------------------------------------------------------------
    Study("CA-01 Vantage: spin-echo T1 before, 'T1 3D MPRAGE + C' after", "Canon", (
        row("Locator", OTHER, CA_LOC),
        row("T1_SE_AX", "t1n", CA_T1_SE),
        row("T2_FSE_AX", "t2w", CA_T2_FSE),
        row("FLAIR_AX", "t2f", CA_FLAIR),
        row("DWI_AX", OTHER, CA_DWI),
        row("ADC_AX", OTHER, CA_ADC),
        row("T1 3D MPRAGE + C", "t1c", CA_MPRAGE),
    ), {"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),
    Study("CA-02 Toshiba: 2D gradient-echo T1 (T1W_FFE), agent recorded after injection", "Canon", (
        row("Locator", OTHER, CA_LOC),
        row("T1W_FFE_AX", "t1n", CA_T1_FFE),
        row("T2W_FSE_AX", "t2w", CA_T2_FSE),
        row("FLAIR_AX", "t2f", CA_FLAIR),
        row("T2*_FE_AX", OTHER, CA_T2_STAR),
        row("T1W_FFE_AX", "t1c", CA_T1_FFE, contrast_agent="Magnevist"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("CA-03 spin-echo T1 and an unlabelled 3D MPRAGE, no contrast information", "Canon", (
        row("Locator", OTHER, CA_LOC),
        row("T1_SE_AX", T1, CA_T1_SE, truth="t1n", why=NO_CONTRAST_INFO),
        row("T2_FSE_AX", "t2w", CA_T2_FSE),
        row("FLAIR_AX", "t2f", CA_FLAIR),
        row("DWI_AX", OTHER, CA_DWI),
        row("3D MPRAGE", T1, CA_MPRAGE, truth="t1c", why=NO_CONTRAST_INFO),
    ), Refused("no t1n series (T1 series without contrast information: 2)", "undecidable",
               "a spin-echo T1 and a 3D T1 with nothing about contrast: either could be the post-contrast one")),
    Study("CA-04 'pre contrast' and 'post contrast' spelled out", "Canon", (
        row("Locator", OTHER, CA_LOC),
        row("T1_SE_AX pre contrast", "t1n", CA_T1_SE),
        row("T2_FSE_AX", "t2w", CA_T2_FSE),
        row("FLAIR_AX", "t2f", CA_FLAIR),
        row("DWI_AX", OTHER, CA_DWI),
        row("T1_SE_AX post contrast", "t1c", CA_T1_SE),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),

    # --- Hitachi ----------------------------------------------------------------------------------
    Study("HI-01 'T1W_SE' before, 'T1 SE Gd' after", "Hitachi", (
        row("Scout", OTHER, HI_SCOUT),
        row("T1W_SE", "t1n", HI_T1_SE),
        row("T2W_FSE", "t2w", HI_T2_FSE),
        row("FLAIR", "t2f", HI_FLAIR),
        row("DWI", OTHER, HI_DWI),
        row("T1 SE Gd", "t1c", HI_T1_SE),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("HI-02 open 1.2T: 'T1W_SE_Gd_Tra', a T2* gradient echo", "Hitachi", (
        row("Scout", OTHER, HI_SCOUT),
        row("T1W_SE_Tra", "t1n", HI_T1_SE),
        row("T2W_FSE_Tra", "t2w", HI_T2_FSE),
        row("FLAIR_Tra", "t2f", HI_FLAIR),
        row("T2*W_GE_Tra", OTHER, HI_T2_STAR),
        row("T1W_SE_Gd_Tra", "t1c", HI_T1_SE),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("HI-03 'T1 SE pre Gd'", "Hitachi", (
        row("Scout", OTHER, HI_SCOUT),
        row("T1 SE pre Gd", "t1n", HI_T1_SE),
        row("T2W_FSE", "t2w", HI_T2_FSE),
        row("FLAIR", "t2f", HI_FLAIR),
        row("DWI", OTHER, HI_DWI),
        row("ADC", OTHER, HI_ADC),
        row("T1 SE Gd", "t1c", HI_T1_SE),
    ), {"t1n": 2, "t1c": 7, "t2w": 3, "t2f": 4}),

    # --- empty or misleading names: the physics decides ------------------------------------------
    Study("MX-01 de-identified: descriptions and protocol names removed, agent on the post T1", "GE", (
        row("", OTHER, GE_LOC),
        row("", "t1n", GE_T1_SE),
        row("", "t2w", GE_T2_FSE),
        row("", "t2f", GE_FLAIR),
        row("", OTHER, GE_DWI),
        row("", "t1c", GE_BRAVO, contrast_agent="GADAVIST"),
    ), {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    Study("MX-02 names that say nothing or mislead ('ax t2' on a FLAIR)", "Siemens", (
        row("MR BRAIN", "t1n", SI_T1_SE),
        row("SERIES 3", "t2w", SI_T2_TSE),
        row("ax t2", "t2f", SI_T2_TIRM),
        row("MR BRAIN", "t1c", SI_MPRAGE, contrast_agent="DOTAREM 0.5 mmol/ml"),
    ), {"t1n": 1, "t1c": 4, "t2w": 2, "t2f": 3}),
    Study("MX-03 swapped names: 'AX T2' on a T1 spin echo, 'AX T1' on a T2 FSE", "GE", (
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T2", "t1n", GE_T1_SE),
        row("AX T1", "t2w", GE_T2_FSE),
        row("AX FLAIR", "t2f", GE_FLAIR),
        row("AX T1 +C", "t1c", GE_T1_SE),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
    Study("MX-04 two identical T1 without contrast information", "Siemens", (
        row("localizer", OTHER, SI_LOC),
        row("T1 AX", T1, SI_T1_SE, truth="t1n", why=NO_CONTRAST_INFO + ", and the same acquisition"),
        row("T2 AX", "t2w", SI_T2_TSE),
        row("FLAIR AX", "t2f", SI_T2_TIRM),
        row("T1 AX", T1, SI_T1_SE, truth="t1c", why=NO_CONTRAST_INFO + ", and the same acquisition"),
    ), Refused("no t1c series (T1 series without contrast information: 2)", "undecidable",
               "two T1 series that differ in nothing the classifier reads")),
    Study("MX-05 exam without contrast: one T1", "GE", (
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T1", T1, GE_T1_SE, truth="t1n",
            why="a single T1 with nothing about contrast could be a pre- or a post-contrast one"),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX DWI", OTHER, GE_DWI),
    ), Refused("no t1c series", "missing", "no contrast was given")),
    Study("MX-06 an unlabelled T1 acquired after the post-contrast one is not the pre-contrast T1", "GE", (
        row("3-PLANE LOC", OTHER, GE_LOC),
        row("AX T2 FSE", "t2w", GE_T2_FSE),
        row("AX T2 FLAIR", "t2f", GE_FLAIR),
        row("AX T1 +C", "t1c", GE_T1_SE),
        row("SAG T1", T1, GE_T1_SE, truth="t1c",
            why="acquired after the injection, so post-contrast, but nothing else says so"),
    ), Refused("no t1n series", "missing", "no T1 was acquired before the injection")),
    Study("MX-07 wrong protocol picked: names contradict the acquisition", "Siemens", _with_protocol(
        row("localizer", OTHER, SI_LOC),
        row("t2_tse_tra", "t1n", SI_T1_SE),
        row("t1_se_tra", "t2w", SI_T2_TSE),
        row("t1_tirm_tra_dark-fluid", "t2f", SI_T2_TIRM),
        row("t1_se_tra_KM", "t1c", SI_T1_SE),
    ), {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}),
)

VENDORS: tuple[str, ...] = ("GE", "Siemens", "Philips", "Canon", "Hitachi")


def uid(study: Study, number: int) -> str:
    """The series UID of the ``number``-th series of a study in this table."""
    return f"{study.name.split()[0]}.{number}"


def series_of(study: Study) -> list[SeriesInfo]:
    """The study's series as the classifier gets them (series number = position, from 1)."""
    return [SeriesInfo(uid=uid(study, n), description=r.description, series_number=n, **r.attributes)
            for n, r in enumerate(study.rows, start=1)]
