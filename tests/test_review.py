"""The weekly review: one offline HTML report (no script or stylesheet from the network) with
traffic, cost, quality, alerts, failure patterns, new cases and gate results; and the CLI verbs
``workbench review`` and ``workbench failures``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from production import REFUNDS

from workbench.evaluate.gate import check_gate
from workbench.maintain import add_test_cases, cases_from_feedback
from workbench.monitor_alerts import check_alerts
from workbench.review import weekly_review

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["This week", "Traffic", "Traffic, latency, cost and feedback over the window",
            "Cost", "Projected monthly cost per choice",
            "Quality against the card's targets (production)", "Evaluation runs in the window",
            "Alerts", "Failure patterns", "Failure patterns per day",
            "New test cases from production", "Gate results"]


class _Loads(HTMLParser):
    """Every URL the page would load: script src, link href, img/iframe src."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.headings: list[str] = []
        self._h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        self._h2 = tag == "h2"

    def handle_data(self, data):
        if self._h2:
            self.headings.append(data)
            self._h2 = False


def _cli(*args: str, project) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args, str(project.path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_review_opens_offline_with_every_section(shop):
    project = shop.project
    cases = cases_from_feedback(project)
    added = add_test_cases(project, "support", cases[cases["input"].isin(REFUNDS)])
    check_gate(project, shop.deployed_run)
    check_alerts(project, window_s=7 * 86400)  # stored only when one fires
    review = weekly_review(project)
    text = review.path.read_text(encoding="utf-8")
    page = _Loads()
    page.feed(text)
    assert page.urls == []  # nothing from the network, not even a stylesheet
    assert "<script>" in text and "Plotly" in text  # plotly.js inlined
    assert page.headings == SECTIONS
    assert "13 failures in 4 patterns" in text
    for case in added.added:
        assert case in text
    assert "PASS" in text or "FAIL" in text
    assert review.path.parent == project.reports_dir and review.path.name.startswith("review-")
    assert any(line.startswith("New test cases: 2") for line in review.headline)
    assert any(line.startswith("Gate: ") and "of 1 checks" in line for line in review.headline)


def test_an_empty_project_has_a_review_too(project):
    review = weekly_review(project)
    text = review.path.read_text(encoding="utf-8")
    assert "No failures in this window" in text and "<script" not in text


def test_the_cli_writes_the_review_and_the_issue_drafts(shop, tmp_path):
    out = tmp_path / "weekly.html"
    done = _cli("review", "--since", "7d", "--out", str(out), project=shop.project)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and f"review: {out}" in done.stdout
    assert "Failures: 13 failures in 4 patterns" in done.stdout

    drafts = tmp_path / "drafts"
    done = _cli("failures", "--since", "7d", "--issues", str(drafts), "--json",
                project=shop.project)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["failures"] == 13 and [c["size"] for c in body["clusters"]] == [5, 4, 2, 2]
    assert Path(body["issues"]["jira_csv"]).is_file() and len(body["issues"]["markdown"]) == 4

    done = _cli("failures", "--since", "1d", project=shop.project)
    assert done.returncode == 0 and "9 failures in 3 patterns" in done.stdout

    bad = _cli("review", "--since", "soon", project=shop.project)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
