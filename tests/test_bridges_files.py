"""Phase 1 and 2 bridges: the card as a Markdown brief, the sketch as Draw.io XML and SVG, the
matrices as CSV and XLSX (read back with openpyxl), and dataset versions exported and imported
again with the same content hash."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from workbench.bridges import BridgeError
from workbench.bridges.card import export_card, sketch_drawio, write_table
from workbench.bridges.data import export_dataset, reimport

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def test_the_card_goes_out_as_a_brief_a_drawio_file_an_svg_and_sheets(sample_project):
    openpyxl = pytest.importorskip("openpyxl")
    from workbench.buildvsbuy import score_options
    from workbench.card import load_card

    made = export_card(sample_project)
    assert sorted(made) == ["csv", "drawio", "md", "svg", "xlsx"]
    assert {p.parent for p in made.values()} == {sample_project.path / "exports" / "card"}

    brief = made["md"].read_text()
    card = load_card(sample_project)
    assert brief.startswith("# Help desk triage: project brief")
    for m in card.metrics:
        assert f"| {m.name} |" in brief
    assert "![Architecture sketch](architecture.svg)" in brief
    assert "| 1 | No LLM (classical ML or rules) |" in brief  # the card-adjusted ranking

    # Draw.io: an mxfile whose cells are the six steps joined by five arrows, each with geometry
    root = ET.parse(made["drawio"]).getroot()
    assert root.tag == "mxfile"
    cells = root.findall("./diagram/mxGraphModel/root/mxCell")
    assert [c.get("id") for c in cells[:2]] == ["0", "1"] and cells[1].get("parent") == "0"
    boxes = [c for c in cells if c.get("vertex") == "1" and c.get("id").startswith("step-")]
    arrows = [c for c in cells if c.get("edge") == "1"]
    assert len(boxes) == 6 and len(arrows) == 5
    ids = {c.get("id") for c in cells}
    assert all(a.get("source") in ids and a.get("target") in ids for a in arrows)
    assert all(c.find("mxGeometry").get("as") == "geometry" for c in boxes + arrows)
    assert [b.get("value").split("</b>")[0].removeprefix("<b>") for b in boxes] == \
        ["Input", "PII filter", "Prompt", "Model", "Parser", "Output"]
    assert ET.fromstring(made["svg"].read_text()).tag.endswith("svg")

    # the matrices as sheets: what openpyxl reads back is the table the notebook shows
    ranked = score_options(card=card)
    book = openpyxl.load_workbook(made["xlsx"])
    assert book.sheetnames == ["matrix", "weights"]
    rows = list(book["matrix"].values)
    assert list(rows[0]) == list(ranked.columns)
    assert [r[2] for r in rows[1:]] == list(ranked["label"])
    assert [r[-1] for r in rows[1:]] == pytest.approx(list(ranked["total"]))
    weights = {r[0]: r[1] for r in book["weights"].values if r and r[1] is not None
               and r[0] != "criterion"}
    assert weights == pytest.approx(ranked.attrs["weights"])
    assert pd.read_csv(made["csv"])["total"].tolist() == pytest.approx(list(ranked["total"]))


def test_a_decision_matrix_goes_to_xlsx_and_a_bad_suffix_writes_nothing(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    from workbench.compare import build_table, decision_matrix

    table = build_table({"r1": {"metrics": {"accuracy": 0.9}, "p95_latency_s": 1.2,
                                "cost_per_request_usd": 0.002, "parse_rate": 1.0},
                         "r2": {"metrics": {"accuracy": 0.7}, "p95_latency_s": 0.3,
                                "cost_per_request_usd": 0.0, "parse_rate": 0.9}},
                        configs={"r1": {"model": "openai/gpt-4o-mini"},
                                 "r2": {"model": "local/smollm2-135m"}})
    ranked = decision_matrix(table)
    path = write_table(ranked, tmp_path / "matrix.xlsx")
    sheet = openpyxl.load_workbook(path)["matrix"]
    values = list(sheet.values)
    assert [r[values[0].index("model")] for r in values[1:]] == list(ranked["model"])
    with pytest.raises(BridgeError):
        write_table(ranked, tmp_path / "matrix.ods")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.xlsx"]


def test_sketch_drawio_escapes_card_text(sample_project):
    from workbench.card import load_card

    card = load_card(sample_project)
    card = card.model_copy(update={"use_case": card.use_case.model_copy(
        update={"inputs": "<script>alert(1)</script> & more"})})
    root = ET.fromstring(sketch_drawio(card))
    value = root.find(".//mxCell[@id='step-1']").get("value")
    assert "&lt;script&gt;" in value and "<script>" not in value


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_dataset_version_round_trips_with_the_same_content_hash(project, tmp_path, fmt):
    from workbench.data import import_data, save_version

    frame = pd.DataFrame({
        "text": ["Refund my order, please", "Wifi down again", "Hello | pipes, \"quotes\"\nnew"
                 "line", "Où est mon colis ?", "Nothing expected here"],
        "label": ["billing", "technical", "other", "shipping", None],
        "ticket": ["T1", "T2", "T3", "T4", "T5"],
        "stars": [5, 1, 3, None, 2], "score": [0.25, 0.5, 1.0, 0.125, None],
        "vip": [True, False, True, False, True], "channel": ["email", "chat", "web", "web", ""]})
    if fmt != "csv":  # CSV has one empty cell for both a missing text and an empty one
        frame["note"] = ["first", None, "", "x", None]
    first = import_data(project, frame, name="tickets", input="text", expected="label",
                        id="ticket", metadata="*")
    split = first.value.data_hash
    from workbench.data import load

    with_split = load(project, "tickets").assign(
        split=["train", "train", "validation", "test", "train"])
    second = save_version(project, "tickets", with_split, transform="split",
                          params={"seed": 1}, parent=first.version)
    assert second.value.data_hash != split

    made = export_dataset(project, "tickets", format=fmt, out=tmp_path / "out")
    assert made.path == tmp_path / "out" / f"tickets.{fmt}" and made.version == 2
    sidecar = json.loads(made.lineage_path.read_text())
    assert sidecar["data_hash"] == second.value.data_hash and sidecar["version"] == 2
    assert [(s["version"], s["transform"]) for s in sidecar["lineage"]] == \
        [(1, "import"), (2, "split")]
    assert sidecar["lineage"][1]["params"] == {"seed": 1}
    assert sidecar["splits"] == {"test": 1, "train": 3, "validation": 1}

    back = reimport(project, made.path, name="tickets-again")
    assert back.value.data_hash == second.value.data_hash
    assert back.value.columns == second.value.columns

    # an older version by number, and a format that does not exist
    old = export_dataset(project, "tickets", 1, format=fmt, out=tmp_path / "v1")
    assert old.data_hash == first.value.data_hash
    with pytest.raises(BridgeError):
        export_dataset(project, "tickets", format="xls", out=tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_data_export_cli_writes_the_file_and_its_lineage(project, tmp_path, capsys):
    from workbench.cli import main
    from workbench.data import import_data

    import_data(project, DATASETS / "support_messages.csv", name="support", input="text",
                expected="intent", id="ticket_id", metadata="*")
    code = main(["data", "export", "support", "--format", "jsonl", "--out", str(tmp_path / "x"),
                 "--project", str(project.path)])
    tmp_path = tmp_path / "x"
    assert code == 0, capsys.readouterr()
    assert "Exported support v" in capsys.readouterr().out
    lines = (tmp_path / "support.jsonl").read_text().splitlines()
    sidecar = json.loads((tmp_path / "support.lineage.json").read_text())
    assert len(lines) == sidecar["rows"] and set(json.loads(lines[0])) == set(sidecar["columns"])
    assert main(["data", "export", "nope", "--project", str(project.path)]) == 1
    assert "There is no dataset 'nope'" in capsys.readouterr().err
