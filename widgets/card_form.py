"""The project card form (phase 1): use case, success metrics and constraints, validated on save.

The front end (``static/card_form.js``) keeps the user's draft and, on Save, sends the three
edited sections plus a bump of ``save_requests``. Everything else happens here: the draft is
validated with exactly the rules a hand edit of ``workbench.toml`` meets (``workbench.card``),
every problem lands in ``errors`` (shown beside the form), and the file is written only when
there are none — then ``saved_count`` goes up. Only the sections the form edits are written, so
a model chosen or a decision logged meanwhile by another notebook survives a save.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Any

import traitlets

import workbench
from widgets._base import PROBLEMS, STATIC, ProjectWidget, front_end, problem_message
from workbench.card import (
    MEASURABLE_METRICS,
    PRIVACY_SUGGESTIONS,
    TASK_TYPES,
    CardProblems,
    parse_card,
    save_card,
)

FORM_SECTIONS = ("use_case", "metrics", "constraints")
_USE_CASE_FIELDS = ("description", "users", "task_type", "inputs", "outputs")
_METRIC_FIELDS = ("name", "target", "direction", "unit")
_NUMBER_FIELDS = {"monthly_budget_usd": float, "expected_requests_per_day": int,
                  "latency_budget_s": float}
_LIST_FIELDS = ("privacy", "blocked_terms")


class CardForm(ProjectWidget):
    """Edit the project card in a notebook.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    Problems (an invalid file on disk, a metric without a unit, ...) are shown in ``errors``,
    never raised, so the notebook cell always renders the form.
    """

    _esm = front_end("card_form.js")
    _css = STATIC / "card_form.css"

    use_case = traitlets.Dict().tag(sync=True)
    metrics = traitlets.List(traitlets.Dict()).tag(sync=True)
    constraints = traitlets.Dict().tag(sync=True)
    decisions = traitlets.List(traitlets.Dict()).tag(sync=True)  # shown, not edited here
    chosen_model = traitlets.Unicode("").tag(sync=True)

    task_types = traitlets.List(traitlets.Unicode(), default_value=list(TASK_TYPES)).tag(sync=True)
    metric_catalog = traitlets.List(traitlets.Dict()).tag(sync=True)
    privacy_suggestions = traitlets.List(traitlets.Unicode(),
                                         default_value=list(PRIVACY_SUGGESTIONS)).tag(sync=True)
    # What the workbench does about each privacy rule (or that it cannot enforce one).
    privacy_effects = traitlets.List(traitlets.Unicode()).tag(sync=True)

    errors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    missing = traitlets.List(traitlets.Unicode()).tag(sync=True)  # still to fill; not blocking
    status = traitlets.Unicode("loaded").tag(sync=True)  # loaded | saved | invalid | error
    message = traitlets.Unicode("").tag(sync=True)
    save_requests = traitlets.Int(0).tag(sync=True)  # the Save button bumps it
    reload_requests = traitlets.Int(0).tag(sync=True)  # the Reload button bumps it
    saved_count = traitlets.Int(0).tag(sync=True)
    # Bumped after every save attempt, so the front end hears back even when the answer (the
    # same problems as last time) changes no other trait.
    save_answers = traitlets.Int(0).tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None, **kwargs):
        super().__init__(project, **kwargs)
        self.metric_catalog = [
            {"name": m.name, "units": list(m.units), "direction": m.direction,
             "description": m.description, "phases": list(m.phases),
             "task_types": list(m.task_types)}
            for m in MEASURABLE_METRICS.values()]
        self.observe(lambda _change: self.save(), names="save_requests")
        self.observe(lambda _change: self.reload(), names="reload_requests")
        self.reload()

    # -- actions ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Show the card as it is on disk (a hand edit included) and any problems it has."""
        try:
            project = self.open_project()
            raw = project.card()
        except PROBLEMS as exc:
            self._fail(exc)
            return
        card, problems = parse_card(raw)
        with self.hold_sync():
            self._show_raw(raw)
            self.errors = problems
            self.missing = card.missing() if card else []
            self.status = "invalid" if problems else "loaded"
            self.message = (f"{project.card_path.name} has problems: fix them here and save, "
                            "or fix the file." if problems else f"Loaded {project.card_path}.")

    def save(self) -> bool:
        """Validate the form and write it; returns whether the card was saved."""
        try:
            return self._save()
        finally:
            self.save_answers += 1

    def _save(self) -> bool:
        try:
            project = self.open_project()
            draft, row_of = self.draft()
            merged = {**project.card(), **draft}
            card, problems = parse_card(merged)
            if card is not None:
                card = save_card(project, card, sections=FORM_SECTIONS)
        except CardProblems as exc:
            card, problems = None, exc.problems
        except PROBLEMS as exc:
            self._fail(exc)
            return False
        if card is None:
            with self.hold_sync():
                self.errors = [_renumber(p, row_of) for p in problems]
                self.status = "invalid"
                count = len(problems)
                self.message = (f"Not saved: {count} problem{'s' if count != 1 else ''} "
                                "to fix first.")
            return False
        when = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        with self.hold_sync():
            self._show_raw(project.card())
            self.errors = []
            self.missing = card.missing()
            self.status = "saved"
            self.message = f"Saved to {project.card_path} at {when}."
            self.saved_count += 1
        return True

    def draft(self) -> tuple[dict[str, Any], list[int]]:
        """The form's three sections as TOML-shaped tables, ready for ``parse_card``.

        Numbers typed as text are converted; text that is not a number is passed on unchanged so
        validation names it. Blank metric rows (added, never filled) are dropped; the second
        value maps each kept row to its row in the form, so messages point at the right row."""
        use_case = {k: str(self.use_case.get(k) or "").strip() for k in _USE_CASE_FIELDS}
        use_case = {k: v for k, v in use_case.items() if v}
        metrics, row_of = [], []
        for i, row in enumerate(self.metrics):
            entry = {k: _clean(row.get(k)) for k in _METRIC_FIELDS}
            if all(v in (None, "") for v in entry.values()):
                continue
            entry["target"] = _number(entry["target"], float)
            metrics.append({k: v for k, v in entry.items()
                            if v is not None and (v != "" or k in ("name", "unit"))})
            row_of.append(i)
        constraints: dict[str, Any] = {}
        for key, kind in _NUMBER_FIELDS.items():
            value = _number(_clean(self.constraints.get(key)), kind)
            if value is not None and value != "":
                constraints[key] = value
        for key in _LIST_FIELDS:  # one entry per line in the form
            entries = self.constraints.get(key) or []
            if isinstance(entries, str):
                entries = entries.splitlines()
            constraints[key] = [str(p).strip() for p in entries if str(p).strip()]
        tables: dict[str, Any] = {"use_case": use_case, "metrics": metrics,
                                  "constraints": constraints}
        return tables, row_of

    @traitlets.observe("constraints")
    def _explain_privacy(self, change: dict[str, Any]) -> None:
        from workbench.privacy import policy

        rules = (change["new"] or {}).get("privacy") or []
        if isinstance(rules, str):
            rules = rules.splitlines()
        self.privacy_effects = policy(rules).effects()

    # -- helpers ---------------------------------------------------------------------------------
    def _show_raw(self, raw: dict[str, Any]) -> None:
        # Fill the form from the file even when it is invalid, so the user can fix it here.
        use_case = raw.get("use_case") if isinstance(raw.get("use_case"), dict) else {}
        self.use_case = {k: _text(use_case.get(k)) for k in _USE_CASE_FIELDS}
        rows = raw.get("metrics") if isinstance(raw.get("metrics"), list) else []
        self.metrics = [{k: _text(row.get(k)) if k != "target" else _target(row.get(k))
                         for k in _METRIC_FIELDS} for row in rows if isinstance(row, dict)]
        constraints = raw.get("constraints") if isinstance(raw.get("constraints"), dict) else {}
        self.constraints = {**{k: _target(constraints.get(k)) for k in _NUMBER_FIELDS},
                            **{k: [str(p) for p in constraints.get(k)]
                               if isinstance(constraints.get(k), list) else []
                               for k in _LIST_FIELDS}}
        log = raw.get("decisions") if isinstance(raw.get("decisions"), list) else []
        self.decisions = [{k: _text(entry.get(k)) for k in ("date", "phase", "decision", "reason")}
                          for entry in log if isinstance(entry, dict)]
        model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
        self.chosen_model = _text(model.get("chosen"))

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, CardProblems):
            errors = exc.problems
        else:
            errors = [problem_message(exc, "The project card", "read or saved")]
        with self.hold_sync():
            self.project_path = self.where()
            self.errors = errors
            self.status = "error"
            self.message = "The card could not be loaded or saved."


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _number(value: Any, kind: type) -> Any:
    """Text from an input box as a number when it is one; anything else unchanged."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return kind(value) if kind is float or float(value).is_integer() else value
    try:
        number = float(str(value).replace(",", "").replace("_", ""))
    except ValueError:
        return value
    if kind is int:
        return int(number) if number.is_integer() else number
    return number


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _target(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else _text(value)


def _renumber(problem: str, row_of: list[int]) -> str:
    """Point ``metrics[i]`` at the form's row i, counting rows the user left blank."""
    def swap(match: re.Match) -> str:
        i = int(match.group(1))
        return f"metrics[{row_of[i] if i < len(row_of) else i}]"

    return re.sub(r"metrics\[(\d+)\]", swap, problem)
