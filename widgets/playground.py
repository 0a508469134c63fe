"""The prompt playground (phase 4): edit a prompt, run it on a few items, compare, save.

The front end (``static/playground.js``) edits the draft traits (system prompt, template, model,
temperature, max_tokens, description) and bumps ``run_requests`` or ``save_requests``. Everything
else happens here, through the same kernel calls a script makes:

- Run: ``workbench.prompts.render`` checks the draft on every sample item (a template error names
  the variable and the line), then ``complete_item`` answers each item on a background thread
  (``progress`` counts them) for the draft and, once per saved version, for that version — so
  the outputs show side by side with the previous version's;
- Save: ``save_prompt`` stores the draft as the next version; a draft that behaves like a saved
  version (any of them, not only the one it started from) stores nothing and says which.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import traitlets

import workbench
from widgets._base import PROBLEMS, STATIC, ProjectWidget, front_end, problem_message
from workbench.errors import WorkbenchError

DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 256
PREVIEW_CHARS = 400


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


class Playground(ProjectWidget):
    """Try a prompt on ``n_items`` items of a dataset split, beside the last saved version.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    A prompt that does not exist yet starts from ``{{ input }}`` and is saved as version 1.
    Problems are shown in ``error`` (and ``template_error`` for a template), never raised."""

    _esm = front_end("playground.js")
    _css = STATIC / "playground.css"

    prompt_name = traitlets.Unicode("").tag(sync=True)
    dataset = traitlets.Unicode("").tag(sync=True)
    split = traitlets.Unicode("validation").tag(sync=True)
    version = traitlets.Int(0).tag(sync=True)  # the saved version the draft started from; 0: none

    # the draft, edited by the front end
    system = traitlets.Unicode("").tag(sync=True)
    template = traitlets.Unicode("{{ input }}").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    temperature = traitlets.Float(DEFAULT_TEMPERATURE).tag(sync=True)
    max_tokens = traitlets.Int(DEFAULT_MAX_TOKENS).tag(sync=True)
    description = traitlets.Unicode("").tag(sync=True)
    model_choices = traitlets.List(traitlets.Dict()).tag(sync=True)  # {id, kind, reason}

    items = traitlets.List(traitlets.Dict()).tag(sync=True)  # {item_id, input, expected}
    outputs = traitlets.List(traitlets.Dict()).tag(sync=True)  # the draft's, one per item
    previous_outputs = traitlets.List(traitlets.Dict()).tag(sync=True)  # version's, per item
    previous_label = traitlets.Unicode("").tag(sync=True)

    run_requests = traitlets.Int(0).tag(sync=True)  # the Run button bumps it
    save_requests = traitlets.Int(0).tag(sync=True)  # the Save button bumps it
    running = traitlets.Bool(False).tag(sync=True)
    progress = traitlets.Int(0).tag(sync=True)
    progress_total = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("ready").tag(sync=True)  # ready|running|ran|saved|unchanged|error
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    template_error = traitlets.Dict().tag(sync=True)  # {part, variable, line, message}
    saved_version = traitlets.Int(0).tag(sync=True)  # the version the last Save stored
    run_count = traitlets.Int(0).tag(sync=True)  # finished runs, so callers can wait on it

    def __init__(self, project: workbench.Project | str | os.PathLike | None, prompt_name: str,
                 *, dataset: str, split: str = "validation", n_items: int = 5, **kwargs):
        super().__init__(project, **kwargs)
        self._stored = None  # the Stored[PromptVersion] the draft started from
        self._rows: list[dict[str, Any]] = []  # the sample items, as complete_item wants them
        self._previous_cache: dict[str, list[dict[str, Any]]] = {}  # _behaviour -> outputs
        self._thread: threading.Thread | None = None
        self._ran_hash = ""  # the draft the current outputs came from
        self._lock = threading.Lock()
        self.n_items = n_items
        with self.hold_sync():
            self.prompt_name = prompt_name
            self.dataset = dataset
            self.split = split
        self.observe(lambda _change: self.run(background=True), names="run_requests")
        self.observe(lambda _change: self.save(), names="save_requests")
        self.reload()

    # -- loading -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Load the latest saved version into the draft and sample the items again."""
        from workbench.data.splitting import load_split
        from workbench.errors import RecordNotFound
        from workbench.prompts import PromptVersion, load_prompt

        try:
            project = self.open_project()
            try:
                self._stored = load_prompt(project, self.prompt_name)
                prompt = self._stored.value
            except RecordNotFound:
                self._stored, prompt = None, PromptVersion()
            rows = load_split(project, self.dataset, self.split).head(self.n_items)
        except PROBLEMS as exc:
            self._fail(exc)
            return
        self._rows = [{k: v for k, v in row.items()} for row in rows.to_dict("records")]
        for row in self._rows:
            row["id"] = str(row["id"])
        params = prompt.params or {}
        shown_model = prompt.model or self._default_model(project)
        with self.hold_sync():
            self.version = self._stored.version if self._stored else 0
            self.system = prompt.system
            self.template = prompt.template
            self.model = shown_model
            self.temperature = float(params.get("temperature", DEFAULT_TEMPERATURE))
            self.max_tokens = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
            self.description = ""
            self.model_choices = self._choices(shown_model)
            self.items = [{"item_id": row["id"], "input": _text(row.get("input")),
                           "expected": _text(row.get("expected"))} for row in self._rows]
            self.outputs = []
            self.previous_outputs = []
            self.previous_label = f"v{self.version}" if self.version else ""
            self.error = ""
            self.template_error = {}
            self.status = "ready"
            self.message = (f"Editing {self.prompt_name} v{self.version}." if self.version else
                            f"{self.prompt_name} is new: Save stores it as version 1.")

    @staticmethod
    def _default_model(project: workbench.Project) -> str:
        from workbench.llm.gateway import default_model

        return default_model(project)

    def _choices(self, current: str) -> list[dict[str, Any]]:
        from workbench.llm.registry import models

        usable = [{"id": m.id, "kind": m.kind, "reason": m.reason}
                  for m in models(prices=False) if m.usable]
        if current and current not in {m["id"] for m in usable}:
            usable.insert(0, {"id": current, "kind": "current", "reason": "the prompt's model"})
        return usable

    # -- the draft -----------------------------------------------------------------------------
    def draft(self):
        """The prompt version the editor holds now (a ``PromptVersion``; not saved)."""
        from workbench.prompts import PromptVersion

        base = self._stored.value if self._stored else PromptVersion()
        params = dict(base.params or {})
        # Only write a parameter the prompt already had or the user moved off its default, so an
        # untouched draft equals its version and Save can say "no change".
        for key, value, default in (("temperature", float(self.temperature), DEFAULT_TEMPERATURE),
                                    ("max_tokens", int(self.max_tokens), DEFAULT_MAX_TOKENS)):
            if key in params and params[key] == value:
                continue  # keep the saved 0 rather than the slider's 0.0
            if key in params or value != default:
                params[key] = value
        model: str | None = self.model.strip() or None
        if base.model is None and self.project is not None \
                and model == self._default_model(self.project):
            model = None  # the project default, left as it was: keep following the card
        values = base.model_dump()
        values.update(system=self.system, template=self.template, model=model, params=params,
                      description=self.description.strip() or base.description)
        return PromptVersion.model_validate(values)

    # -- Run -----------------------------------------------------------------------------------
    def run(self, *, background: bool = False) -> list[dict[str, Any]]:
        """Answer the sample items with the draft (and the saved version, once). With
        ``background`` the calls happen on a thread and this returns at once; ``wait()`` joins
        it. Returns the draft's outputs (empty when in the background or on a problem)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self.message = "Still running the previous request…"
                return []
            try:
                draft = self._checked_draft()
            except _Stop:
                return []
            with self.hold_sync():
                self.running = True
                self.status = "running"
                self.error = ""
                self.template_error = {}
                self.progress = 0
                need_previous = self._stored is not None and \
                    _behaviour(self._stored.value) not in self._previous_cache
                self.progress_total = len(self._rows) * (2 if need_previous else 1)
                self.message = f"Running {len(self._rows)} items on {self.model}…"
            if background:
                self._thread = threading.Thread(target=self._run, args=(draft,), daemon=True,
                                                name="workbench-playground")
                self._thread.start()
                return []
        return self._run(draft)

    def wait(self, timeout: float | None = 60) -> None:
        """Wait for a background run to finish."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _checked_draft(self):
        from workbench.prompts import TemplateError, render

        try:
            draft = self.draft()
            for row in self._rows or [{"input": ""}]:
                render(draft, row)
        except TemplateError as exc:
            with self.hold_sync():
                self.template_error = {"part": exc.part, "variable": exc.variable,
                                       "line": exc.line, "message": exc.one_line()}
                self.error = exc.one_line()
                self.status = "error"
                self.progress = 0
                self.message = "Fix the template first."
            raise _Stop from None
        except (WorkbenchError, ValueError) as exc:
            self._fail(exc)
            raise _Stop from None
        if not self._rows:
            self._fail(WorkbenchError(f"{self.dataset} has no {self.split} items to try.",
                                      "Pick another split or dataset."))
            raise _Stop
        return draft

    def _run(self, draft) -> list[dict[str, Any]]:
        try:
            outputs = self._answer(draft, self.model.strip() or None)
            self._ran_hash = _behaviour(draft)
            previous = self.previous_outputs
            if self._stored is not None:
                key = _behaviour(self._stored.value)
                if key not in self._previous_cache:
                    self._previous_cache[key] = self._answer(self._stored.value, None)
                previous = self._previous_cache[key]
            ok = sum(1 for o in outputs if not o["error"])
            with self.hold_sync():
                self.outputs = outputs
                self.previous_outputs = previous
                self.previous_label = f"v{self._stored.version}" if self._stored else ""
                self.status = "ran"
                self.message = (f"Ran {len(outputs)} items: {ok} answered"
                                + self._match_summary(outputs) + ".")
            return outputs
        except Exception as exc:  # a thread must never die silently
            self._fail(exc)
            return []
        finally:
            with self.hold_sync():
                self.running = False
                self.run_count += 1

    @staticmethod
    def _match_summary(outputs: list[dict[str, Any]]) -> str:
        judged = [o["match"] for o in outputs if o["match"] is not None]
        return f", {sum(judged)} of {len(judged)} match the expected answer" if judged else ""

    def _answer(self, prompt, model: str | None) -> list[dict[str, Any]]:
        from workbench.evaluate import normalize_text
        from workbench.prompts import complete_item

        train = self._train(prompt)
        out = []
        for row in self._rows:
            result = complete_item(self.project, prompt, row, model=model, train=train)
            completion = result.completion
            value = result.parsed.value
            shown = value if isinstance(value, str) else (
                "" if value is None else _json(value))
            expected = _text(row.get("expected"))
            match = None
            if expected and result.parsed.ok and not result.error:
                match = normalize_text(shown) == normalize_text(expected)
            out.append({
                "item_id": row["id"],
                "output": _text(completion.text if completion else "")[:4000],
                "parsed": shown[:PREVIEW_CHARS], "parse_ok": bool(result.parsed.ok),
                "parse_error": _text(result.parsed.error) if not result.parsed.ok else "",
                "error": _text(result.error), "match": match,
                "latency_s": round(completion.latency_s, 3) if completion else None,
            })
            self.progress += 1
        return out

    def _train(self, prompt):
        if prompt.few_shot.mode not in ("random", "similar"):
            return None
        from workbench.data.splitting import load_split

        return load_split(self.project, self.dataset, "train")

    # -- Save ----------------------------------------------------------------------------------
    def save(self) -> int:
        """Store the draft as the next version; returns its number (the same number and a
        "no change" message when nothing changed, 0 on a problem)."""
        from workbench.prompts import TemplateError, save_prompt

        try:
            draft = self.draft()
            stored = save_prompt(self.open_project(), self.prompt_name, draft)
        except TemplateError as exc:
            with self.hold_sync():
                self.template_error = {"part": exc.part, "variable": exc.variable,
                                       "line": exc.line, "message": exc.one_line()}
                self.error = exc.one_line()
                self.status = "error"
                self.message = "Not saved: fix the template first."
            return 0
        except (*PROBLEMS, ValueError) as exc:
            self._fail(exc, "saved")
            return 0
        self._stored = stored
        if stored.unchanged:  # behaves like a saved version: that version, nothing stored
            newest = ("" if stored.version == stored.latest
                      else f" (v{stored.latest} is the newest)")
            only = (" Only the description differs; a description alone makes no version."
                    if stored.description_ignored else "")
            self._show_saved(stored.version, "unchanged",
                             f"No change: the draft is the same as v{stored.version}{newest}, "
                             f"so nothing was saved.{only}")
            return stored.version
        if self.outputs and self._ran_hash == _behaviour(stored.value):
            # What was just run is the new version; its outputs are now "the previous".
            self._previous_cache[self._ran_hash] = list(self.outputs)
        self._show_saved(stored.version, "saved", f"Saved {self.prompt_name} v{stored.version}.")
        return stored.version

    def _show_saved(self, version: int, status: str, message: str) -> None:
        with self.hold_sync():
            self.version = version
            self.saved_version = version
            self.previous_label = f"v{version}"
            self.description = ""
            self.template_error = {}
            self.error = ""
            self.status = status
            self.message = message

    # -- problems ------------------------------------------------------------------------------
    def _fail(self, exc: BaseException, verb: str = "read or run") -> None:
        if isinstance(exc, ValueError) and hasattr(exc, "errors"):  # pydantic
            message = "; ".join(e.get("msg", "") for e in exc.errors()) + "."
        elif isinstance(exc, PROBLEMS):
            message = problem_message(exc, f"The prompt {self.prompt_name}", verb)
        else:  # a failure inside a run (the model, a parser): its own words
            message = f"{type(exc).__name__}: {exc}"
        with self.hold_sync():
            self.error = message
            self.status = "error"
            self.message = "Something went wrong; see the message."
            self.project_path = self.where()


class _Stop(Exception):
    """The request ended with a message already shown."""


def _behaviour(prompt) -> str:
    """What decides a prompt's outputs: everything but its description."""
    import hashlib
    import json

    values = prompt.model_dump(mode="json", exclude={"description"})
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
