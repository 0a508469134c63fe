"""Self-contained HTML reports: plotly.js is inlined, so a report opens offline and can be mailed.

A report is a title plus sections; a section body is HTML text, a pandas DataFrame or a plotly
figure.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.fsutil import atomic_write_text

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
 padding:0 1rem;color:#1f2933;line-height:1.5}
h1{margin-bottom:.2rem} .sub{color:#616e7c;margin-top:0}
section{margin:2rem 0} table{border-collapse:collapse;font-size:.9rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.35rem .7rem;text-align:left;vertical-align:top}
th{background:#f5f7fa} .ok{color:#1b7f3b} .bad{color:#b42318}
"""


def _body(content: Any) -> str:
    if content is None:
        return ""
    if hasattr(content, "to_plotly_json"):  # a plotly figure
        return content.to_html(full_html=False, include_plotlyjs=False)
    if hasattr(content, "to_html") and hasattr(content, "columns"):  # a DataFrame
        return content.to_html(index=False, border=0, na_rep="")
    return str(content)


def render(title: str, sections: list[tuple[str, Any]], subtitle: str = "") -> str:
    needs_plotly = any(hasattr(body, "to_plotly_json") for _, body in sections)
    script = ""
    if needs_plotly:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='sub'>{html.escape(subtitle)} · made {made}</p>",
    ]
    for heading, body in sections:
        parts.append(f"<section><h2>{html.escape(heading)}</h2>{_body(body)}</section>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(path: Path, title: str, sections: list[tuple[str, Any]],
                 subtitle: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render(title, sections, subtitle))
    return path
