"""The report as a PDF (ReportLab's page layout engine): header, measurements, RANO, key images,
findings with their review, impression, recommendations, signature and disclaimer. A report
that is not signed says DRAFT on every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from lib.atomic import atomic_path

from .document import DISCLAIMER, Report

#: Enhancing lesions listed one per row; smaller ones are summed in one row.
MAX_LESION_ROWS = 6
REGIONS = (("NCR", "necrotic / non-enhancing core"), ("ED", "edema"), ("ET", "enhancing tumor"),
           ("TC", "tumor core"), ("WT", "whole tumor"))
_STYLES = getSampleStyleSheet()
_SMALL = ParagraphStyle("small", parent=_STYLES["BodyText"], fontSize=8, leading=10)
_TABLE = TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                     ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                     ("VALIGN", (0, 0), (-1, -1), "TOP")])


def _number(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _measurement_table(report: Report) -> Table:
    volumes = report.measurements.get("volumes_ml", {})
    percent = report.measurements.get("percent_of_brain") or {}
    changes = (report.response or {}).get("region_changes", {})
    head = ["Region", "Volume (mL)", "% of brain"] + (["Prior (mL)", "Change (mL)", "Change (%)"] if changes else [])
    rows = [head]
    for key, name in REGIONS:
        row = [f"{key} ({name})", _number(volumes.get(key)), _number(percent.get(key), 2)]
        if changes:
            change = changes.get(key, {})
            row += [_number(change.get(k)) for k in ("prior_ml", "change_ml", "change_percent")]
        rows.append(row)
    table = Table(rows, hAlign="LEFT")
    table.setStyle(_TABLE)
    return table


def _rano_table(report: Report) -> Table | None:
    lesions = report.measurements.get("enhancing_lesions", [])
    if not lesions:
        return None
    rows: list[list[Any]] = [[Paragraph(f"<b>{name}</b>", _SMALL) for name in (
        "Lesion", "Volume (mL)", "Axial slice", "Longest (mm)", "Perpendicular (mm)", "Product (mm²)",
        "Measurable", "Target")]]
    targets = set(report.measurements.get("targets", []))
    shown = lesions[:MAX_LESION_ROWS]
    for lesion in shown:
        bidimensional = lesion.get("bidimensional", {})
        measurable = "yes" if lesion.get("measurable") else f"no: {lesion.get('not_measurable_because') or ''}"
        rows.append([str(lesion["id"]), _number(lesion.get("volume_ml"), 2), str(bidimensional.get("slice_index", "-")),
                     _number(bidimensional.get("longest", {}).get("length_mm")),
                     _number(bidimensional.get("perpendicular", {}).get("length_mm")),
                     _number(bidimensional.get("product_mm2"), 0), Paragraph(measurable, _SMALL),
                     "yes" if lesion["id"] in targets else ""])
    if len(lesions) > len(shown):
        smaller = lesions[len(shown):]
        rows.append([f"+{len(smaller)}", _number(sum(lesion.get("volume_ml", 0) for lesion in smaller), 2), "", "", "",
                     "", Paragraph("smaller enhancing components, none measurable", _SMALL), ""])
    table = Table(rows, hAlign="LEFT", colWidths=(16 * mm, 18 * mm, 16 * mm, 19 * mm, 24 * mm, 20 * mm, 52 * mm,
                                                  13 * mm))
    table.setStyle(_TABLE)
    return table


def _findings(report: Report) -> list[Any]:
    flow: list[Any] = []
    for finding in report.findings:
        mark = "[AI] " if finding.ai_derived else ""
        if finding.state == "declined":
            text = f"<strike>{mark}{finding.text}</strike> <i>(declined by {finding.reviewed_by})</i>"
        elif finding.state == "edited":
            text = f"{mark}{finding.shown_text} <i>(edited by {finding.reviewed_by})</i>"
        elif finding.state == "approved":
            text = f"{mark}{finding.text} <i>(approved by {finding.reviewed_by})</i>"
        else:
            text = f"{mark}{finding.text} <i>(not reviewed)</i>"
        flow.append(Paragraph("• " + text, _STYLES["BodyText"]))
    return flow


def write_pdf(report: Report, path: Path, key_images: Path | None = None) -> Path:
    """Write ``report`` to ``path`` (with the ``key_images`` PNG when given)."""
    styles = _STYLES
    flow: list[Any] = [Paragraph("Brain tumor MRI: measurement report", styles["Title"])]
    header = [[k, v] for k, v in {**report.header, "Report": f"version {report.version}, {report.created}"}.items()]
    header_table = Table(header, hAlign="LEFT", colWidths=(35 * mm, 130 * mm))
    header_table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 9),
                                      ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9)]))
    flow += [header_table, Spacer(1, 4 * mm), Paragraph("Measurements", styles["Heading2"]),
             _measurement_table(report)]
    brain = report.measurements.get("brain_ml")
    side = report.measurements.get("hemisphere")
    if brain or side:
        crossing = report.measurements.get("crosses_midline")
        flow.append(Paragraph(f"Brain volume {_number(brain)} mL. Tumor in the {side or '?'} hemisphere"
                              + ("" if crossing is None else ", crossing the midline" if crossing
                                 else ", not crossing the midline") + ".", _SMALL))
    rano = _rano_table(report)
    flow += [Spacer(1, 3 * mm), Paragraph("RANO 2.0", styles["Heading2"])]
    flow.append(rano if rano is not None else Paragraph("No enhancing tumor.", styles["BodyText"]))
    flow.append(Paragraph(f"Sum of products of the target lesions (SPD): "
                          f"{_number(report.measurements.get('spd_mm2'), 0)} mm².", _SMALL))
    if report.response:
        for kind in ("bidimensional", "volumetric"):
            result = report.response.get(kind, {})
            if result:
                flow.append(Paragraph(f"<b>{kind.capitalize()}:</b> {result.get('category', '?')}"
                                      f"{' (preliminary)' if result.get('preliminary') else ''}: "
                                      f"{result.get('reason', '')}", styles["BodyText"]))
        clinical = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report.clinical.items())
        flow.append(Paragraph(f"Clinical inputs (from the clinician): {clinical or 'not given'}.", _SMALL))
    if key_images is not None and key_images.exists():
        flow += [Spacer(1, 3 * mm), KeepTogether([Paragraph("Key images", styles["Heading2"]),
                                                  Image(str(key_images), width=175 * mm, height=175 * mm * 0.69)])]
    flow += [Paragraph("Findings", styles["Heading2"]), *_findings(report),
             Paragraph("Impression", styles["Heading2"]),
             Paragraph(report.impression or "<i>(not written)</i>", styles["BodyText"]),
             Paragraph("Recommendations", styles["Heading2"]),
             Paragraph(report.recommendations or "<i>(none)</i>", styles["BodyText"]), Spacer(1, 4 * mm)]
    label = report.label
    signature = (f"Signed by {report.signed_by} on {report.signed_at}." if report.final
                 else "DRAFT: not signed. Findings marked AI await review.")
    flow += [Paragraph(f"<b>{signature}</b> Model {report.model_version or '-'}; segmentation "
                       f"{label.get('tag', '?')} version {label.get('version', '?')}.", styles["BodyText"]),
             Spacer(1, 3 * mm), Paragraph(DISCLAIMER, _SMALL)]
    decorate = _footer(report)
    with atomic_path(path, suffix=".pdf") as tmp:  # owner-only: a PACS study's header names the patient
        document = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                                     topMargin=15 * mm, bottomMargin=15 * mm, title=f"Report {report.study}",
                                     author=report.signed_by or "BrainTumorLabel (draft)")
        document.build(flow, onFirstPage=decorate, onLaterPages=decorate)
    return path


def _footer(report: Report) -> Any:
    def draw(canvas: Canvas, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, f"BrainTumorLabel report, study {report.study}, page {document.page}")
        if not report.final:
            canvas.setFont("Helvetica-Bold", 60)
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.15))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(40)
            canvas.drawCentredString(0, 0, "DRAFT")
        canvas.restoreState()
    return draw
