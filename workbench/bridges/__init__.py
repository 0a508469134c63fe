"""Bridges to the tools the guide names: the workbench's artifacts go out in their formats, and
theirs come in as workbench records.

- ``workbench.bridges.card``: the card as a Markdown brief (Notion, Confluence), the architecture
  sketch as a ``.drawio`` file (Draw.io) and SVG, the build-vs-buy and decision matrices as CSV
  and XLSX (Google Sheets, Excel);
- ``workbench.bridges.data``: a dataset version as CSV, JSONL or Parquet with its lineage as a
  sidecar JSON, in a folder laid out for ``dvc add``;
- ``workbench.bridges.tracking``: runs to an MLflow tracking store and to Weights & Biases
  offline run folders;
- ``workbench.bridges.promptfoo``: a ``promptfooconfig.yaml`` in (prompt versions, a dataset,
  scorers), and an evaluation out as a promptfoo config against the served deployment;
- ``workbench.bridges.ragas``: an optional check that the RAG metrics agree with Ragas' own.

Label Studio has its own module (``workbench.labelstudio``). Importing this package loads
nothing heavy: each bridge imports its tool's package when it is called, and says how to install
it when it is missing.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError


class BridgeError(WorkbenchError):
    """Something could not go out to, or come in from, another tool."""


def exports_dir(project, *parts: str) -> Path:
    """``<project>/exports/<parts...>``: where bridges write unless told otherwise (made here)."""
    folder = Path(project.path, "exports", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


__all__ = ["BridgeError", "exports_dir"]
