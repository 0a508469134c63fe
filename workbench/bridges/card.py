"""Phase 1 out: the card as a Markdown brief, the architecture sketch as Draw.io and SVG, and the
build-vs-buy and decision matrices as CSV and XLSX.

- ``card_markdown``: a one-page brief to paste into Notion or Confluence (both import Markdown
  tables and headings);
- ``sketch_drawio``: the architecture sketch as Draw.io's own file format (an uncompressed
  ``mxfile``: one ``mxCell`` per box and per arrow, with geometry), so the team can move boxes
  and add their own systems in Draw.io / diagrams.net;
- ``write_table``: a matrix (``buildvsbuy.score_options`` or ``compare.decision_matrix``) as CSV,
  or as an XLSX workbook with a second sheet holding the weights and notes behind the ranking
  (openpyxl writes it; Google Sheets and Excel open it);
- ``export_card``: all of them into ``<project>/exports/card/`` in one call.
"""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.bridges import BridgeError, exports_dir
from workbench.errors import MissingDependency
from workbench.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

    from workbench.card import ProjectCard
    from workbench.project import Project

CARD_FORMATS = ("md", "drawio", "svg", "csv", "xlsx")
_DIRECTION = {">=": "at least", "<=": "at most"}


# -- the brief -----------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _md_table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _number(value: float) -> str:
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def card_markdown(card: ProjectCard, *, title: str = "Project brief",
                  build_vs_buy: pd.DataFrame | None = None,
                  sketch_file: str | None = None) -> str:
    """The card as a Markdown brief: use case, success metrics, constraints, model choice,
    decision log, and (when given) the build-vs-buy ranking and a link to the sketch image."""
    uc, c = card.use_case, card.constraints
    out = [f"# {title}", "",
           f"_Exported from the LLMOps Workbench on {dt.date.today().isoformat()}; the project "
           "card (workbench.toml) is the source of truth._", "", "## Use case", ""]
    fields = [("What", uc.description), ("Users", uc.users),
              ("Task type", (uc.task_type or "").replace("_", " ")),
              ("Inputs", uc.inputs), ("Outputs", uc.outputs)]
    out += [f"- **{k}:** {' '.join(v.split())}" for k, v in fields if v] or ["_Not described._"]
    out += ["", "## Success metrics", ""]
    if card.metrics:
        out += _md_table(["Metric", "Target", "Unit"],
                         ([m.name, f"{_DIRECTION.get(m.direction, m.direction)} "
                           f"{_number(m.target)}", m.unit] for m in card.metrics))
    else:
        out.append("_No success metrics yet._")
    out += ["", "## Constraints", ""]
    facts = []
    if c.monthly_budget_usd is not None:
        facts.append(f"- **Monthly budget:** ${c.monthly_budget_usd:,.2f}")
    if c.expected_requests_per_day is not None:
        facts.append(f"- **Expected traffic:** {c.expected_requests_per_day:,} requests a day")
    if c.latency_budget_s is not None:
        facts.append(f"- **Latency budget:** {c.latency_budget_s:g} s")
    if c.run_cost_limit_usd is not None:
        facts.append(f"- **Most one evaluation run may cost:** ${c.run_cost_limit_usd:,.2f}")
    facts += [f"- **Privacy:** {rule}" for rule in c.privacy]
    if c.blocked_terms:
        facts.append("- **Blocked terms:** " + ", ".join(c.blocked_terms))
    out += facts or ["_None set._"]
    out += ["", "## Model", ""]
    out.append(f"- **Chosen:** {card.model.chosen}" + (f" ({card.model.reason})"
                                                      if card.model.reason else "")
               if card.model.chosen else "_Not chosen yet (phase 3)._")
    if sketch_file:
        out += ["", "## Architecture sketch", "", f"![Architecture sketch]({sketch_file})"]
    if build_vs_buy is not None and not build_vs_buy.empty:
        from workbench.buildvsbuy import CRITERIA

        criteria = [k for k in CRITERIA if k in build_vs_buy.columns]
        out += ["", "## Build vs buy", "",
                "Scores run from 1 (poor) to 5 (excellent); the total is weighted.", ""]
        label = "label" if "label" in build_vs_buy.columns else "option"
        out += _md_table(["Rank", "Option", *[k.replace("_", " ") for k in criteria], "Total"],
                         ([r["rank"], r[label], *[f"{r[k]:g}" for k in criteria],
                           f"{r['total']:.2f}"] for r in build_vs_buy.to_dict("records")))
        notes = build_vs_buy.attrs.get("notes") or []
        out += [""] + [f"- {note}" for note in notes] if notes else []
    out += ["", "## Decision log", ""]
    if card.decisions:
        out += _md_table(["Date", "Phase", "Decision", "Reason"],
                         ([d.date.isoformat(), d.phase, d.decision, d.reason]
                          for d in card.decisions))
    else:
        out.append("_No decisions logged yet._")
    return "\n".join(out) + "\n"


# -- the sketch in Draw.io's format --------------------------------------------------------------

def sketch_drawio(card: ProjectCard, *, name: str = "Architecture sketch") -> str:
    """The architecture sketch as a Draw.io file (``mxfile`` XML, uncompressed): the same boxes,
    words and arrows as ``architecture_sketch``; skipped steps are dashed and grey."""
    from workbench.sketch import _BOX_W, _GAP, _PAD, _box_lines, _boxes, _footer

    boxes = _boxes(card)
    lines = max(len(_box_lines(b)) for b in boxes)
    box_h = max(96, 50 + 15 * lines)
    root_file = ET.Element("mxfile", host="llmops-workbench", type="device")
    diagram = ET.SubElement(root_file, "diagram", id="workbench-architecture", name=name)
    width = _PAD * 2 + len(boxes) * _BOX_W + (len(boxes) - 1) * _GAP
    model = ET.SubElement(diagram, "mxGraphModel", dx=str(width), dy=str(box_h + 80), grid="1",
                          gridSize="10", guides="1", tooltips="1", connect="1", arrows="1",
                          fold="1", page="1", pageScale="1", pageWidth=str(max(width, 850)),
                          pageHeight="400", math="0", shadow="0")
    root = ET.SubElement(model, "root")
    ET.SubElement(root, "mxCell", id="0")
    ET.SubElement(root, "mxCell", id="1", parent="0")
    ids = []
    for i, box in enumerate(boxes):
        cell_id = f"step-{i + 1}"
        ids.append(cell_id)
        body = "<br>".join(escape(line) for line in _box_lines(box))
        value = f"<b>{escape(box.title)}</b><br>{body}"
        if box.skipped:
            style = ("rounded=1;whiteSpace=wrap;html=1;align=left;verticalAlign=top;spacing=10;"
                     "fillColor=#f5f7fa;strokeColor=#9aa5b1;dashed=1;fontColor=#7b8794;")
        else:
            style = ("rounded=1;whiteSpace=wrap;html=1;align=left;verticalAlign=top;spacing=10;"
                     f"fillColor=#f8fafc;strokeColor={box.accent};strokeWidth=2;"
                     "fontColor=#1f2933;")
        cell = ET.SubElement(root, "mxCell", id=cell_id, value=value, style=style, vertex="1",
                             parent="1")
        ET.SubElement(cell, "mxGeometry", x=str(_PAD + i * (_BOX_W + _GAP)), y=str(_PAD),
                      width=str(_BOX_W), height=str(box_h)).set("as", "geometry")
    for i in range(len(ids) - 1):
        edge = ET.SubElement(root, "mxCell", id=f"arrow-{i + 1}", style=(
            "edgeStyle=orthogonalEdgeStyle;rounded=0;html=1;endArrow=block;endFill=1;"
            "strokeColor=#52606d;strokeWidth=2;"), edge="1", parent="1", source=ids[i],
            target=ids[i + 1])
        ET.SubElement(edge, "mxGeometry", relative="1").set("as", "geometry")
    footer = _footer(card)
    if footer:
        note = ET.SubElement(root, "mxCell", id="constraints", value=escape(footer),
                             style="text;html=1;align=left;fontColor=#52606d;", vertex="1",
                             parent="1")
        ET.SubElement(note, "mxGeometry", x=str(_PAD), y=str(_PAD + box_h + 12),
                      width=str(width - 2 * _PAD), height="30").set("as", "geometry")
    ET.indent(root_file)
    return ET.tostring(root_file, encoding="unicode", xml_declaration=False) + "\n"


# -- matrices as CSV and XLSX --------------------------------------------------------------------

def _openpyxl():
    try:
        import openpyxl
    except ImportError:
        raise MissingDependency("Writing XLSX", "pip install openpyxl") from None
    return openpyxl


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """A matrix as CSV or XLSX bytes. The XLSX has the table on its first sheet and the
    weights (``attrs["weights"]``) and notes (``attrs["notes"]``) behind it on a second."""
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    if fmt != "xlsx":
        raise BridgeError(f"A matrix goes out as csv or xlsx, not {fmt!r}.",
                          "Name the file .csv or .xlsx.")
    openpyxl = _openpyxl()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "matrix"
    sheet.append([str(c) for c in df.columns])
    for row in df.itertuples(index=False):
        sheet.append([_excel_value(v) for v in row])
    sheet.freeze_panes = "A2"
    weights = df.attrs.get("weights") or {}
    notes = df.attrs.get("notes") or []
    if weights or notes:
        info = book.create_sheet("weights")
        info.append(["criterion", "weight"])
        for key, value in weights.items():
            info.append([key, float(value)])
        if notes:
            info.append([])
            info.append(["notes"])
            for note in notes:
                info.append([note])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _excel_value(value: Any) -> Any:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a matrix to ``path`` (``.csv`` or ``.xlsx``, by its suffix) atomically."""
    path = Path(path).expanduser()
    fmt = path.suffix.lower().lstrip(".")
    data = table_bytes(df, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


# -- everything at once --------------------------------------------------------------------------

def export_card(project: Project, out: str | Path | None = None, *,
                formats: Iterable[str] = CARD_FORMATS,
                build_vs_buy: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the phase-1 artifacts into ``out`` (default ``<project>/exports/card``):
    ``brief.md``, ``architecture.drawio``, ``architecture.svg`` and ``build_vs_buy.csv|xlsx``
    (the matrix given, else the card's defaults). Returns ``{format: path}``. Everything is
    made in memory first, so a bad card or a missing package writes no file."""
    from workbench import buildvsbuy
    from workbench.card import load_card
    from workbench.sketch import architecture_sketch

    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in CARD_FORMATS]
    if unknown:
        raise BridgeError(f"Unknown card export format(s) {unknown}.",
                          f"Choose from {', '.join(CARD_FORMATS)}.")
    card = load_card(project)
    matrix = build_vs_buy if build_vs_buy is not None else buildvsbuy.score_options(card=card)
    made: dict[str, tuple[str, bytes]] = {}
    if "svg" in formats:
        made["svg"] = ("architecture.svg", str(architecture_sketch(card)).encode())
    if "drawio" in formats:
        made["drawio"] = ("architecture.drawio", sketch_drawio(card).encode())
    for fmt in ("csv", "xlsx"):
        if fmt in formats:
            made[fmt] = (f"build_vs_buy.{fmt}", table_bytes(matrix, fmt))
    if "md" in formats:
        text = card_markdown(card, title=f"{project.name}: project brief", build_vs_buy=matrix,
                             sketch_file="architecture.svg" if "svg" in formats else None)
        made["md"] = ("brief.md", text.encode())
    folder = Path(out).expanduser() if out is not None else exports_dir(project, "card")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt, (name, data) in made.items():
        atomic_write_bytes(folder / name, data)
        written[fmt] = folder / name
    return written


__all__ = ["CARD_FORMATS", "card_markdown", "export_card", "sketch_drawio", "table_bytes",
           "write_table"]
