"""The architecture sketch: the pipeline a project card implies, drawn as one self-contained SVG.

input → PII filter → prompt → model → parser → output, with the card's choices written on the
boxes. The SVG uses no external resources, scripts or stylesheets (only presentation attributes),
so it renders the same in marimo (``mo.Html(svg)``), Jupyter (the returned string displays itself)
and the self-contained HTML reports, and it never restyles the page around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from workbench.card import ProjectCard, SuccessMetric, privacy_forbids_external_pii

_BOX_W, _GAP, _PAD = 176, 34, 16
_TITLE_Y, _LINE_H, _CHARS_PER_LINE, _MAX_LINES = 28, 15, 24, 8
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

_PARSERS = {
    "classification": "label from a fixed list; anything else counts as a parse failure",
    "extraction": "JSON validated against a pydantic schema",
    "generation": "plain text with length and format checks",
    "question_answering": "answer text with the sources it cites",
    "chat": "reply text with safety and format checks",
}
_PROMPTS = {
    "classification": "instructions, the label list and a few labelled examples",
    "extraction": "instructions and the output schema, with an example",
    "generation": "instructions, style guide and examples",
    "question_answering": "question plus retrieved context",
    "chat": "system prompt plus conversation history",
}
_LOCAL_PREFIXES = ("local/", "ollama/", "fake/")


class Svg(str):
    """SVG text that Jupyter and marimo display as a picture (and reports embed verbatim)."""

    def _repr_html_(self) -> str:
        return str(self)


@dataclass(frozen=True)
class _Box:
    title: str
    lines: list[str]
    skipped: bool = False
    accent: str = "#2563eb"


def architecture_sketch(card: ProjectCard) -> Svg:
    """The card's pipeline as SVG text; every piece of card text is escaped."""
    boxes = _boxes(card)
    width = _PAD * 2 + len(boxes) * _BOX_W + (len(boxes) - 1) * _GAP
    footer = _footer(card)
    lines = max(len(_box_lines(b)) for b in boxes)
    box_h = max(96, _TITLE_Y + 22 + (lines - 1) * _LINE_H + 16)
    height = _PAD * 2 + box_h + (24 if footer else 0)
    title = "Architecture sketch: " + " → ".join(
        b.title + (" (skipped)" if b.skipped else "") for b in boxes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px;height:auto" role="img" '
        f'aria-label="{escape(title)}" font-family="{escape(_FONT)}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" rx="12" fill="#ffffff"/>',
        '<defs><marker id="wb-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#52606d"/></marker></defs>',
    ]
    for i, box in enumerate(boxes):
        x = _PAD + i * (_BOX_W + _GAP)
        parts.append(_draw_box(box, x, _PAD, box_h))
        if i < len(boxes) - 1:
            y = _PAD + box_h / 2
            parts.append(f'<line x1="{x + _BOX_W + 2}" y1="{y}" x2="{x + _BOX_W + _GAP - 2}" '
                         f'y2="{y}" stroke="#52606d" stroke-width="2" '
                         'marker-end="url(#wb-arrow)"/>')
    if footer:
        parts.append(f'<text x="{_PAD}" y="{height - _PAD + 2}" font-size="12" '
                     f'fill="#52606d">{escape(footer)}</text>')
    parts.append("</svg>")
    return Svg("".join(parts))


def _box_lines(box: _Box) -> list[str]:
    lines = [w for line in box.lines for w in _wrap(line)]
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES - 1] + [lines[_MAX_LINES - 1][:_CHARS_PER_LINE - 1] + "…"]
    return lines


def _draw_box(box: _Box, x: float, y: float, box_h: float) -> str:
    if box.skipped:
        frame = (f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{box_h}" rx="10" '
                 'fill="#f5f7fa" stroke="#9aa5b1" stroke-width="1.5" stroke-dasharray="6 4"/>')
        colour = "#7b8794"
    else:
        frame = (f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{box_h}" rx="10" '
                 f'fill="#f8fafc" stroke="{box.accent}" stroke-width="2"/>'
                 f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="6" rx="3" '
                 f'fill="{box.accent}"/>')
        colour = "#1f2933"
    out = [f'<g class="wb-sketch-box" data-step="{escape(box.title)}">', frame,
           f'<text x="{x + 12}" y="{y + _TITLE_Y}" font-size="14" font-weight="600" '
           f'fill="{colour}">{escape(box.title)}</text>']
    for j, line in enumerate(_box_lines(box)):
        out.append(f'<text x="{x + 12}" y="{y + _TITLE_Y + 22 + j * _LINE_H}" font-size="11.5" '
                   f'fill="{colour}">{escape(line)}</text>')
    out.append("</g>")
    return "".join(out)


def _wrap(text: str, width: int = _CHARS_PER_LINE) -> list[str]:
    # SVG has no text wrapping; a character count is close enough for a sans-serif at this size.
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > width:  # a long URL or identifier: break it rather than overflow
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines or [""]


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _boxes(card: ProjectCard) -> list[_Box]:
    uc = card.use_case
    task = uc.task_type
    task_words = task.replace("_", " ") if task else "task type not set"
    chosen = card.model.chosen
    pii = privacy_forbids_external_pii(card)
    rule = next((r for r in card.constraints.privacy), "")

    if pii:
        pii_box = _Box("PII filter", ["redact names, emails, phone numbers before the model",
                                      f"rule: {_short(rule, 50)}"], accent="#b42318")
        if chosen and chosen.startswith(_LOCAL_PREFIXES):
            pii_box.lines.append("model runs locally: kept as a safeguard")
    else:
        pii_box = _Box("PII filter", ["skipped: no privacy rule asks for it"], skipped=True)

    targets = {m.name: m for m in card.metrics}
    model_lines = [chosen or "not chosen yet (phase 3)"]
    if chosen:
        model_lines.append("runs locally" if chosen.startswith(_LOCAL_PREFIXES) else "hosted API")
    for name in ("p95_latency", "cost_per_request"):
        if name in targets:
            model_lines.append(_target(targets[name]))
    if card.constraints.latency_budget_s is not None and "p95_latency" not in targets:
        model_lines.append(f"latency budget {card.constraints.latency_budget_s:g} s")

    quality = [_target(m) for m in card.metrics if m.name not in ("p95_latency", "p50_latency",
                                                               "cost_per_request")]
    return [
        _Box("Input", [_short(uc.inputs) or "inputs not described yet"], accent="#0f766e"),
        pii_box,
        _Box("Prompt", [_PROMPTS.get(task or "", "instructions and examples")],
             accent="#7c3aed"),
        _Box("Model", model_lines, accent="#2563eb"),
        _Box("Parser", [f"{task_words}:",
                        _PARSERS.get(task or "", "depends on the task type")], accent="#b45309"),
        _Box("Output", [_short(uc.outputs) or "outputs not described yet", *quality[:3]],
             accent="#15803d"),
    ]


def _target(metric: SuccessMetric) -> str:
    sign = "≥" if metric.direction == ">=" else "≤"
    if metric.unit == "USD":
        return f"{metric.name} {sign} ${metric.target:g}"
    unit = {"fraction": "", "%": "%"}.get(metric.unit, f" {metric.unit}")
    return f"{metric.name} {sign} {metric.target:g}{unit}"


def _footer(card: ProjectCard) -> str:
    c = card.constraints
    parts = []
    if c.monthly_budget_usd is not None:
        parts.append(f"budget ${c.monthly_budget_usd:,.0f} a month")
    if c.expected_requests_per_day is not None:
        parts.append(f"{c.expected_requests_per_day:,} requests a day")
    if c.latency_budget_s is not None:
        parts.append(f"latency budget {c.latency_budget_s:g} s")
    if c.privacy:
        parts.append("privacy: " + "; ".join(c.privacy))
    return " · ".join(parts)
