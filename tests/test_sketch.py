"""The architecture sketch: valid, self-contained SVG that follows the card."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from workbench.card import Constraints, ModelChoice, ProjectCard, UseCase, load_card
from workbench.report import render
from workbench.sketch import architecture_sketch

SVG = "{http://www.w3.org/2000/svg}"


def steps(svg: str) -> dict[str, str]:
    """Each box's step name -> all the text written on it."""
    root = ET.fromstring(svg)
    return {g.get("data-step"): " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
            for g in root.iter(f"{SVG}g")}


def test_sample_card_sketch(sample_project):
    card = load_card(sample_project)
    svg = architecture_sketch(card)

    boxes = steps(svg)
    assert list(boxes) == ["Input", "PII filter", "Prompt", "Model", "Parser", "Output"]
    assert "redact names" in boxes["PII filter"]
    assert "no PII to external APIs" in boxes["PII filter"]
    assert "not chosen yet" in boxes["Model"]
    assert "label from a fixed list" in boxes["Parser"]
    assert "accuracy ≥ 0.9" in boxes["Output"]
    assert "p95_latency ≤ 2 s" in boxes["Model"] and "cost_per_request ≤ $0.002" in boxes["Model"]
    root = ET.fromstring(svg)
    assert "budget $200 a month" in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    # Self-contained: no links, scripts, images or stylesheets that could reach the network.
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for tag in ("script", "image", "style", "foreignObject", "a"):
        assert not list(root.iter(f"{SVG}{tag}")), tag


def test_no_privacy_rule_shows_the_filter_as_skipped_and_the_chosen_model():
    card = ProjectCard(use_case=UseCase(task_type="extraction", inputs="Invoices as text"),
                       model=ModelChoice(chosen="openai/gpt-4o-mini"))
    boxes = steps(architecture_sketch(card))
    assert "skipped" in boxes["PII filter"]
    assert "openai/gpt-4o-mini" in boxes["Model"] and "hosted API" in boxes["Model"]
    assert "JSON validated against a pydantic schema" in boxes["Parser"]
    assert 'stroke-dasharray' in architecture_sketch(card)


def test_card_text_is_escaped():
    nasty = '<script>alert("x")</script> & <b>'
    card = ProjectCard(use_case=UseCase(inputs=nasty, outputs="a" * 500),
                       constraints=Constraints(privacy=[f"no PII to external APIs {nasty}"]))
    svg = architecture_sketch(card)
    ET.fromstring(svg)  # still well-formed XML
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert "alert" in steps(svg)["Input"]


def test_sketch_embeds_in_reports_and_notebooks(sample_project):
    svg = architecture_sketch(load_card(sample_project))
    assert svg._repr_html_() == str(svg)  # Jupyter and marimo display it as a picture
    page = render("Phase 1", [("Architecture", svg)])
    assert str(svg) in page
