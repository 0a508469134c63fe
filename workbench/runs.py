"""Runs: one prompt version, one model, one dataset split — every item recorded, then totals.

    >>> run = start_run(project, "support-intent", dataset="support", split="validation")
    >>> run.totals["metrics"]["accuracy"], run.totals["p95_latency_s"]
    >>> run.items.head()  # per item: messages, output, parsed, tokens, latency, cost, scores

How a run goes:

1. **Estimate.** ``estimate_cost`` renders the items, counts tokens (litellm's counter for hosted
   models, the bundled tokenizer for the local one, words for fakes) and prices them from
   litellm's price map. Above the card's limit (``constraints.run_cost_limit_usd``, else a share
   of the monthly budget) the run refuses to start until ``confirm=True``.
2. **Run.** Items go through ``workbench.prompts.complete_item`` on ``concurrency`` worker
   threads (each model call through the gateway: retries, cache, traces). Each finished item is
   written at once by the calling thread, in small transactions, so a crash loses at most the
   items in flight.
3. **Interrupt.** Ctrl-C (or SIGTERM) stops new items, lets the ones in flight finish and be
   written, marks the run ``interrupted`` and re-raises; a second Ctrl-C abandons those in
   flight. ``resume_run`` runs only the items that have no stored result.
4. **Totals.** Counts, parse rate, latency percentiles, tokens, cost (total, per request, per
   1,000 requests), wall time, and the quality metrics from ``workbench.evaluate`` scorers.

Each run is also a ``RunRecord`` (kind ``"run"``) holding what it was asked to do, so
``project.records.count("run")`` counts runs.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.costs import CostNotConfirmed, estimate_cost, usd
from workbench.errors import WorkbenchError
from workbench.records import Record

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluate.scorers import Scorer
    from workbench.project import Project

STATUSES = ("running", "interrupted", "finished", "failed")
_ITEM_SQL = "INSERT OR REPLACE INTO run_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

Progress = bool | Callable[[int, int], None]


class RunError(WorkbenchError):
    """A run could not be started, resumed or read."""



class RunRecord(Record):
    """What a run was asked to do (its results live in the ``runs`` and ``run_items`` tables)."""

    kind: ClassVar[str] = "run"
    run_id: str
    name: str | None = None
    prompt: str
    prompt_version: int | None = None
    model: str
    dataset: str
    dataset_version: int | None = None
    split: str | None = None
    config: dict[str, Any] = {}


def _prompts():
    from workbench import prompts

    return prompts



@dataclass
class Run:
    """A run as stored: what it did (``config``), how far it got (``status``) and its totals."""

    project: Project = field(repr=False)
    run_id: str
    created_at: float
    name: str | None
    prompt: str
    prompt_version: int | None
    model: str
    dataset: str
    dataset_version: int | None
    split: str | None
    status: str
    config: dict[str, Any]
    totals: dict[str, Any]

    @property
    def items(self) -> pd.DataFrame:
        """One row per stored item, in dataset order."""
        return _load_items(self.project, self.run_id)

    @property
    def metrics(self) -> dict[str, float]:
        """The measured values the card's success metrics can be compared with: the run's
        metrics, plus the scorer means a card can target (``semantic_similarity``, and
        ``judge_score`` from an ``llm_judge`` scorer)."""
        measured = dict(self.totals.get("metrics", {}))
        for name, value in (self.totals.get("scores") or {}).items():
            if name == "semantic_similarity" or name.startswith("llm_judge"):
                key = "judge_score" if name.startswith("llm_judge") else name
                measured.setdefault(key, value)
        return measured

    @property
    def corpus(self) -> dict[str, dict[str, Any]]:
        """Corpus-level scores of the run's ``bleu``/``chrf`` scorers, by scorer key:
        metric ("corpus BLEU"), value (0-1), n, no_output, signature, sentence_metric ("mean
        sentence BLEU", whose value is ``totals["scores"][key]``). Runs finished before these
        were kept get them computed from their items."""
        if "corpus" in self.totals:
            return dict(self.totals["corpus"] or {})
        rows = self.project.store.query("SELECT * FROM run_items WHERE run_id = ?",
                                        (self.run_id,))
        return _nan_to_none(_corpus_totals(self.config, rows))

    @property
    def judges(self) -> list[str]:
        """The judges (``rubric@model``) among the run's scorers."""
        out = []
        for spec in self.config.get("scorers") or []:
            if spec.get("name") == "llm_judge":
                args = spec.get("args") or {}
                out.append(f"{(args.get('rubric') or {}).get('name', 'rubric')}@"
                           f"{args.get('judge_model')}")
        return out

    def compare_to_card(self) -> pd.DataFrame:
        """The card's success metrics against this run: target, value, pass/fail."""
        import pandas as pd

        from workbench.card import compare_to_targets, load_card

        return pd.DataFrame(compare_to_targets(load_card(self.project), self.metrics))

    def classification(self):
        """scikit-learn's classification metrics over the stored items (per-class table and
        confusion matrix included); None when the run is not a classification."""
        from workbench.evaluate.scorers import classification_report

        if self.config.get("task_type") != "classification":
            return None
        items = self.items
        items = items[items["expected"].notna()]
        predicted = [v if out is not None and ok is not False else None
                     for v, ok, out in zip(items["parsed"], items["parse_ok"], items["output"],
                                           strict=True)]
        return classification_report(items["expected"].tolist(), predicted,
                                     labels=self.config.get("labels") or None)

    def _repr_markdown_(self) -> str:
        t = self.totals
        lines = [f"**Run {self.run_id}** ({self.status}): {self.prompt} v{self.prompt_version} "
                 f"on {self.model}, {self.dataset} v{self.dataset_version} {self.split}"]
        if t:
            def num(key: str, fmt: str) -> str:
                value = t.get(key)
                return "n/a" if value is None else format(value, fmt)

            lines.append(f"{t.get('done', 0)}/{t.get('n', 0)} items, {t.get('errors', 0)} errors,"
                         f" parse rate {num('parse_rate', '.1%')}, p95 "
                         f"{num('p95_latency_s', '.2f')}s, cost {usd(t.get('cost_usd') or 0.0)}")
            quality = {k: v for k, v in t.get("metrics", {}).items()
                       if k in ("accuracy", "macro_f1", "exact_match")}
            if quality:
                lines.append(", ".join(f"{k} {v:.3f}" for k, v in quality.items()))
            means = t.get("scores") or {}
            corpus = [f"{c['metric']} {c['value']:.3f} ({c['sentence_metric']} "
                      f"{means[key]:.3f})" for key, c in (t.get("corpus") or {}).items()
                      if c.get("value") is not None and means.get(key) is not None]
            if corpus:
                lines.append(", ".join(corpus))
        return "\n\n".join(lines)


def _run_from_row(project: Project, row: Any) -> Run:
    return Run(project=project, run_id=row["run_id"], created_at=row["created_at"],
               name=row["name"], prompt=row["prompt"], prompt_version=row["prompt_version"],
               model=row["model"], dataset=row["dataset"], dataset_version=row["dataset_version"],
               split=row["split"], status=row["status"], config=json.loads(row["config"]),
               totals=json.loads(row["totals"]) if row["totals"] else {})


def load_run(project: Project, run_id: str) -> Run:
    rows = project.store.query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
    if not rows:
        known = [r["run_id"] for r in project.store.query(
            "SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5")]
        raise RunError(f"There is no run '{run_id}' in this project.",
                       f"Recent runs: {known or 'none yet'}; list them with list_runs(project).")
    return _run_from_row(project, rows[0])


def list_runs(project: Project) -> pd.DataFrame:
    """One row per run, newest first, with its main totals."""
    import pandas as pd

    rows = []
    for r in project.store.query("SELECT * FROM runs ORDER BY created_at DESC"):
        totals = json.loads(r["totals"]) if r["totals"] else {}
        metrics = totals.get("metrics", {})
        rows.append({
            "run_id": r["run_id"], "created": datetime.fromtimestamp(r["created_at"],
                                                                     tz=timezone.utc),
            "name": r["name"], "prompt": r["prompt"], "prompt_version": r["prompt_version"],
            "model": r["model"], "dataset": r["dataset"],
            "dataset_version": r["dataset_version"], "split": r["split"],
            "status": r["status"], "items": totals.get("n"), "done": totals.get("done"),
            "errors": totals.get("errors"), "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"), "parse_rate": totals.get("parse_rate"),
            "p95_latency_s": totals.get("p95_latency_s"),
            "cost_per_request_usd": totals.get("cost_per_request_usd"),
            "cost_usd": totals.get("cost_usd"), "wall_s": totals.get("wall_s"),
        })
    columns = ["run_id", "created", "name", "prompt", "prompt_version", "model", "dataset",
               "dataset_version", "split", "status", "items", "done", "errors", "accuracy",
               "macro_f1", "parse_rate", "p95_latency_s", "cost_per_request_usd", "cost_usd",
               "wall_s"]
    return pd.DataFrame(rows, columns=columns)


def _load_items(project: Project, run_id: str) -> pd.DataFrame:
    import pandas as pd

    project.store.flush()
    rows = project.store.query("SELECT * FROM run_items WHERE run_id = ? ORDER BY position",
                               (run_id,))
    out = []
    for r in rows:
        parsed = json.loads(r["parsed"]) if r["parsed"] else {}
        scores = json.loads(r["scores"]) if r["scores"] else {}
        meta = parsed.get("item", {})
        out.append({
            "item_id": r["item_id"], "position": r["position"], "input": meta.get("input"),
            "expected": meta.get("expected"),
            "messages": json.loads(r["messages"]) if r["messages"] else None,
            "output": r["output"], "parsed": parsed.get("value"),
            "parse_ok": None if r["parse_ok"] is None else bool(r["parse_ok"]),
            "parse_error": parsed.get("error"), "repaired": parsed.get("repaired", 0),
            "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
            "latency_s": r["latency_s"], "cost_usd": r["cost_usd"],
            "cached": None if r["cached"] is None else bool(r["cached"]),
            "error": r["error"], "scores": scores,
            **{f"score.{k}": v.get("value") for k, v in scores.items()},
        })
    base = ["item_id", "position", "input", "expected", "messages", "output", "parsed",
            "parse_ok", "parse_error", "repaired", "prompt_tokens", "completion_tokens",
            "latency_s", "cost_usd", "cached", "error", "scores"]
    return pd.DataFrame(out, columns=base + sorted({k for o in out for k in o} - set(base)))


# -- starting and resuming -----------------------------------------------------------------------

def _new_run_id(prompt: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in prompt)[:40]
    return f"{stamp}_{safe}_{os.urandom(3).hex()}"


def _items_of(project: Project, dataset: str, version: int | None, split: str | None,
              limit: int | None, ids: Sequence[str] | None = None
              ) -> tuple[list[dict[str, Any]], int]:
    """The run's items in dataset order (only ``ids`` when given), and the dataset version they
    came from."""
    from workbench.data.splitting import _ALIASES, SPLITS, SplitError
    from workbench.data.versioning import get_version, load_rows

    stored = get_version(project, dataset, version)
    if split is not None:  # the checks of load_split, without pandas (start-up time)
        split = _ALIASES.get(split, split)
        if split not in SPLITS:
            raise SplitError(f"There is no split {split!r}.", f"Use one of {list(SPLITS)}.")
        if "split" not in stored.value.columns:
            raise SplitError(f"{dataset} v{stored.version} has not been split.",
                             f"Split it first: workbench.data.split(project, {dataset!r}).")
    rows = load_rows(project, dataset, stored.version)
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    for row in rows:
        row["id"] = str(row["id"])
    if ids is not None:
        wanted = {str(i) for i in ids}
        rows = [r for r in rows if r["id"] in wanted]
    if limit is not None:
        rows = rows[:limit]
    return rows, stored.version


def _train_of(project: Project, prompt: Any, dataset: str, version: int,
              train_split: str | None, split: str | None) -> Any:
    """Examples few-shot prompts may draw on; None when there is no such split, or when the
    prompt draws on none (reading it would cost a run's start-up for nothing)."""
    shot = getattr(prompt, "few_shot", None)
    if getattr(shot, "mode", None) not in ("random", "similar"):
        return None
    if not train_split or train_split == split:
        return None
    from workbench.data.splitting import load_split

    try:
        return load_split(project, dataset, train_split, version=version)
    except WorkbenchError:
        return None


def _task_type(project: Project, prompt: Any) -> str | None:
    task = (project.card().get("use_case", {}) or {}).get("task_type")
    if task:
        return task
    return "classification" if getattr(prompt, "labels", None) else None


def _warn_self_judging(scorers: Sequence[Scorer], model: str) -> None:
    """Warn when an ``llm_judge`` scorer would grade the run's own model (or its family)."""
    import warnings

    from workbench.evaluate.judge import self_judging_warning

    for scorer in scorers:
        if scorer.name == "llm_judge" and scorer.args.get("judge_model"):
            warning = self_judging_warning(scorer.args["judge_model"], model)
            if warning:
                warnings.warn(warning, UserWarning, stacklevel=3)


def start_run(project: Project, prompt_name: str, *, version: int | str | None = None,
              dataset: str, split: str | None = "validation", model: str | None = None,
              concurrency: int = 8, limit: int | None = None, confirm: bool = False,
              progress: Progress = True, name: str | None = None,
              train_split: str | None = "train", cache: bool = True,
              scorers: Sequence[Scorer] | None = None, ids: Sequence[str] | None = None,
              **options: Any) -> Run:
    """Run prompt ``prompt_name`` (latest or ``version``) on ``split`` of ``dataset``.

    ``model`` defaults to the prompt's model, then the card's chosen model, then the bundled
    one. ``limit`` takes the first N items, ``ids`` only the items with those ids;
    ``cache=False`` calls the model for every item;
    ``scorers`` defaults to ``default_scorers`` for the card's task type; other ``options`` go
    to each model call. Raises ``CostNotConfirmed`` when the estimate is above the card's limit
    and ``confirm`` is False. Ctrl-C marks the run interrupted; ``resume_run`` finishes it."""
    from workbench.evaluate.scorers import default_scorers
    from workbench.llm.gateway import default_model, prepare

    stored = _prompts().load_prompt(project, prompt_name, version)
    prompt = stored.value
    model = model or getattr(prompt, "model", None) or default_model(project)
    prepare("", model, project=project)  # an unknown model or hosted calls off: fail up front
    items, dataset_version = _items_of(project, dataset, None, split, limit, ids)
    if not items:
        raise RunError(f"{dataset} v{dataset_version} has no {split or ''} items to run.",
                       "Pick another split (split='test' or split=None for all rows).")
    train = _train_of(project, prompt, dataset, dataset_version, train_split, split)
    # A few-shot pool that leaks evaluation rows, or is missing, fails every item the same way:
    # say so before the run exists.
    _prompts().select_examples(prompt, items[0], train)
    estimate = estimate_cost(project, prompt, items, model, train=train)
    if estimate.needs_confirm and not confirm:
        raise CostNotConfirmed(estimate)
    if progress is True:  # interactive: show what the run is expected to cost before it starts
        print(f"Estimate: {estimate}", file=sys.stderr)
    task_type = _task_type(project, prompt)
    chosen = list(scorers) if scorers is not None else default_scorers(task_type)
    _warn_self_judging(chosen, model)
    run_id = _new_run_id(prompt_name)
    config = {
        "prompt": prompt_name, "prompt_version": stored.version, "model": model,
        "dataset": dataset, "dataset_version": dataset_version, "split": split,
        "limit": limit, "ids": sorted(str(i) for i in ids) if ids is not None else None,
        "n_items": len(items), "concurrency": concurrency, "cache": cache,
        "train_split": train_split,
        "task_type": task_type, "labels": list(getattr(prompt, "labels", None) or []),
        "scorers": [s.spec() for s in chosen], "options": options,
        "estimate": asdict(estimate), "confirmed": bool(confirm),
    }
    config = json.loads(json.dumps(config, default=str))
    now = time.time()
    with project.store.write() as db:
        db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (run_id, now, name, prompt_name, stored.version, model, dataset,
                    dataset_version, split, "running", json.dumps(config), None))
    project.records.save(run_id, RunRecord(
        run_id=run_id, name=name, prompt=prompt_name, prompt_version=stored.version,
        model=model, dataset=dataset, dataset_version=dataset_version, split=split,
        config=config))
    todo = list(enumerate(items))
    with _run_tags(run_id, prompt_name, stored.version):
        _execute(project, run_id, todo, prompt, model, train, chosen, concurrency, progress,
                 total=len(items), already=0, options={"cache": cache, **options})
    return load_run(project, run_id)


def resume_run(project: Project, run_id: str, *, concurrency: int = 8,
               progress: Progress = True, retry_errors: bool = False) -> Run:
    """Finish an interrupted (or failed) run: only items without a stored result are run
    (``retry_errors=True`` also re-runs items whose call failed)."""
    from workbench.evaluate.scorers import scorer_from_spec

    run = load_run(project, run_id)
    cfg = run.config
    prompt = _prompts().load_prompt(project, run.prompt, run.prompt_version).value
    items, _ = _items_of(project, run.dataset, run.dataset_version, run.split, cfg.get("limit"),
                         cfg.get("ids"))
    project.store.flush()
    sql = "SELECT item_id FROM run_items WHERE run_id = ?"
    if retry_errors:
        sql += " AND error IS NULL"
    done = {r[0] for r in project.store.db.execute(sql, (run_id,))}
    todo = [(i, item) for i, item in enumerate(items) if item["id"] not in done]
    train = _train_of(project, prompt, run.dataset, run.dataset_version,
                      cfg.get("train_split"), run.split)
    chosen = [scorer_from_spec(s) for s in cfg.get("scorers", [])]
    with project.store.write() as db:
        db.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (run_id,))
    with _run_tags(run_id, run.prompt, run.prompt_version):
        _execute(project, run_id, todo, prompt, run.model, train, chosen, concurrency,
                 progress, total=len(items), already=len(items) - len(todo),
                 options={"cache": cfg.get("cache", True), **cfg.get("options", {})})
    return load_run(project, run_id)


def _run_tags(run_id: str, prompt_name: str, prompt_version: int | None):
    """Every model call of the run carries its id and prompt version in its span (exported
    over OTLP, a run's calls are one session)."""
    from workbench.tracing import tagged

    return tagged(**{"workbench.run_id": run_id, "workbench.prompt": prompt_name,
                     "workbench.prompt_version": prompt_version})


# -- the engine ----------------------------------------------------------------------------------

class _Interrupted(BaseException):
    """Carries a KeyboardInterrupt/SystemExit raised inside a worker to the calling thread."""


class _Fatal(Exception):
    """Carries an error that stops the whole run from a worker to the calling thread."""


class _Never(Exception):
    pass


def _score(scorers: Sequence[Scorer], output: str | None, expected: Any, parsed: Any,
           parse_ok: bool | None, item: dict[str, Any] | None = None
           ) -> dict[str, dict[str, Any]]:
    """Every scorer's verdict on one item; ``item`` (input, latency_s, cost_usd, ...) reaches
    the scorers that ask for it (budgets, the judge)."""
    from workbench.evaluate.scorers import scorer_keys

    scores: dict[str, dict[str, Any]] = {}
    for key, scorer in zip(scorer_keys([s.name for s in scorers]), scorers, strict=True):
        try:
            s = scorer(output, expected, parsed=parsed, parse_ok=parse_ok, item=item)
            scores[key] = {"value": s.value, "passed": s.passed, "reason": s.reason}
        except Exception as exc:  # a broken scorer should not lose the model's answer
            scores[key] = {"value": None, "passed": None,
                           "reason": f"The scorer failed: {type(exc).__name__}: {exc}"}
    return scores


def _item_row(run_id: str, position: int, item: dict[str, Any], result: Any,
              error: str | None, wall_s: float, scorers: Sequence[Scorer]) -> tuple:
    completion = getattr(result, "completion", None)
    parsed = getattr(result, "parsed", None)
    error = error or getattr(result, "error", None)
    output = completion.text if completion is not None else None
    value = getattr(parsed, "value", None)
    ok = getattr(parsed, "ok", None) if completion is not None else None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    expected = item.get("expected")
    if isinstance(expected, float) and expected != expected:
        expected = None
    # Repair turns cost tokens and money too: count every call the item made.
    calls = list(getattr(result, "completions", None) or ([completion] if completion else []))
    prompt_tokens = sum(c.usage.prompt_tokens for c in calls) if calls else None
    completion_tokens = sum(c.usage.completion_tokens for c in calls) if calls else None
    cost = sum(c.cost_usd for c in calls) if calls else None
    scores = _score(scorers, output, expected, value, ok, item={
        "id": item.get("id"), "input": item.get("input"), "expected": expected,
        "latency_s": wall_s, "cost_usd": cost, "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cached": None if completion is None else bool(completion.cached)})
    parsed_json = json.dumps({"value": value, "ok": ok, "error": getattr(parsed, "error", None),
                              "repaired": getattr(result, "repaired", 0),
                              "item": {"input": item.get("input"), "expected": expected}},
                             default=str)
    messages = getattr(result, "messages", None)
    return (run_id, item["id"], position,
            json.dumps(messages, default=str) if messages is not None else None,
            output, parsed_json, None if ok is None else int(bool(ok)),
            prompt_tokens, completion_tokens, wall_s, cost,
            None if completion is None else int(bool(completion.cached)),
            error, json.dumps(scores), time.time())


@dataclass
class _Segment:
    started: float
    wall_s: float = 0.0
    items: int = 0


def _write_rows(project: Project, rows: list[tuple]) -> None:
    with project.store.write() as db:
        db.executemany(_ITEM_SQL, rows)


def _execute(project: Project, run_id: str, todo: list[tuple[int, dict[str, Any]]], prompt: Any,
             model: str, train: Any, scorers: Sequence[Scorer], concurrency: int,
             progress: Progress, *, total: int, already: int, options: dict[str, Any]) -> None:
    from workbench.tracing import tagged

    prompts = _prompts()
    complete_item = prompts.complete_item
    fatal: type[BaseException] = getattr(prompts, "PromptError", _Never)
    results: queue.Queue[tuple | _Interrupted | _Fatal] = queue.Queue()
    stop = threading.Event()
    feed = iter(todo)
    feed_lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            with feed_lock:
                nxt = next(feed, None)
            if nxt is None:
                return
            position, item = nxt
            started = time.perf_counter()
            result, error = None, None
            try:
                with tagged(**{"workbench.item_id": item.get("id")}):
                    result = complete_item(project, prompt, item, model=model, train=train,
                                           **options)
            except fatal as exc:  # the prompt itself is wrong: every item would fail alike
                stop.set()
                results.put(_Fatal(exc))
                return
            except WorkbenchError as exc:
                error = exc.one_line()
            except (KeyboardInterrupt, SystemExit) as exc:
                stop.set()
                results.put(_Interrupted(exc))
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            wall = time.perf_counter() - started
            try:
                results.put(_item_row(run_id, position, item, result, error, wall, scorers))
            except Exception as exc:  # never lose the thread's place silently
                results.put(_item_row(run_id, position, item, None,
                                      f"could not record the item: {exc}", wall, scorers))

    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=already, desc=f"{model}", unit="item")
    done = already

    def report(n: int) -> None:
        nonlocal done
        done += n
        if bar is not None:
            bar.update(n)
        elif callable(progress):
            progress(done, total)

    segment = _Segment(started=time.time())
    started = time.perf_counter()
    # Each worker runs in a copy of this context: the run's span tags (and an enclosing
    # trace) reach the model calls it makes.
    workers = [threading.Thread(target=contextvars.copy_context().run, args=(worker,),
                                name=f"workbench-run-{i}", daemon=True)
               for i in range(max(1, min(concurrency, len(todo))))]
    status = "finished"
    interrupt: BaseException | None = None
    failure: BaseException | None = None

    def drain(block_s: float) -> bool:
        """Write what the workers finished; False when nothing came within ``block_s``."""
        nonlocal interrupt, failure
        try:
            first = results.get(timeout=block_s)
        except queue.Empty:
            return False
        batch = [first]
        while True:
            try:
                batch.append(results.get_nowait())
            except queue.Empty:
                break
        rows = [r for r in batch if isinstance(r, tuple)]
        for r in batch:
            if isinstance(r, _Interrupted) and interrupt is None:
                interrupt = r.args[0]
            if isinstance(r, _Fatal) and failure is None:
                failure = r.args[0]
        if rows:
            _write_rows(project, rows)
            segment.items += len(rows)
            report(len(rows))
        return True

    def busy() -> bool:
        return any(w.is_alive() for w in workers) or not results.empty()

    with _SignalsAsFlags() as signals:
        try:
            for w in workers:
                w.start()
            try:
                while busy():
                    drain(0.1)
                    if signals.count and interrupt is None:
                        interrupt = KeyboardInterrupt()
                    if interrupt is not None:
                        raise KeyboardInterrupt
                    if failure is not None:
                        for w in workers:  # let the items in flight land, then stop
                            w.join()
                        while drain(0):
                            pass
                        raise failure
            except KeyboardInterrupt as exc:
                interrupt = interrupt or exc
                stop.set()
                abandon_at = signals.count + 1
                in_flight = sum(w.is_alive() for w in workers)
                if in_flight:
                    print(f"\nInterrupted: finishing {in_flight} item(s) in flight "
                          "(Ctrl-C again to abandon them).", file=sys.stderr)
                try:
                    while busy() and signals.count < abandon_at:
                        drain(0.1)
                except KeyboardInterrupt:  # raised by a handler we could not replace
                    pass
                status = "interrupted"
        except BaseException:
            status = "failed"
            raise
        finally:
            stop.set()
            segment.wall_s = time.perf_counter() - started
            if bar is not None:
                bar.close()
            _finish(project, run_id, status, segment)
    if interrupt is not None:
        print(f"Run {run_id} interrupted after {done} of {total} items; "
              f"resume it with resume_run(project, {run_id!r}).", file=sys.stderr)
        raise interrupt if isinstance(interrupt, (KeyboardInterrupt, SystemExit)) \
            else KeyboardInterrupt


class _SignalsAsFlags:
    """While a run goes on in the main thread, Ctrl-C (SIGINT) and SIGTERM only count; the loop
    checks the count between writes. An exception raised by a signal in the middle of a
    database write could leave a transaction open (and every other writer of the project
    waiting); this way the run stops between items, keeps every finished one and can be
    resumed. Handlers someone else installed (not Python's defaults) are left alone."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.count += 1

    def __enter__(self) -> _SignalsAsFlags:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum, default in ((signal.SIGINT, signal.default_int_handler),
                                (signal.SIGTERM, signal.SIG_DFL)):
            try:
                previous = signal.getsignal(signum)
                if previous is not default:
                    continue
                signal.signal(signum, self._on_signal)
                self._previous[signum] = previous
            except (ValueError, OSError):
                continue
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


# -- totals --------------------------------------------------------------------------------------

def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def _finish(project: Project, run_id: str, status: str, segment: _Segment) -> None:
    run = load_run(project, run_id)
    segments = [*run.totals.get("segments", []), asdict(segment)]
    totals = compute_totals(project, run_id, n=run.config["n_items"], config=run.config,
                            segments=segments)
    if status == "finished" and totals["done"] < totals["n"]:
        status = "interrupted"
    with project.store.write() as db:
        db.execute("UPDATE runs SET status = ?, totals = ? WHERE run_id = ?",
                   (status, json.dumps(totals, default=_json_default), run_id))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _corpus_totals(config: dict[str, Any], rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Corpus-level BLEU/chrF of the run's ``bleu``/``chrf`` scorers over every stored item,
    keyed like ``totals["scores"]`` (whose value for the same key is the mean of sentence
    scores). Items with no expected value are left out; a failed call (no output) counts as an
    empty output, as the mean counts it as 0. If the corpus scores cannot be computed, each
    bleu/chrf scorer gets an entry with value None and the ``error``, and a warning is logged:
    the run keeps its other totals, and the missing figure says why it is missing."""
    import logging

    from workbench.evaluate import scorers

    specs = config.get("scorers") or []
    if not any((s if isinstance(s, str) else s.get("name")) in ("bleu", "chrf") for s in specs):
        return {}
    ordered = sorted(rows, key=lambda r: r["position"])
    outputs = [r["output"] for r in ordered]
    expected = [(json.loads(r["parsed"]) if r["parsed"] else {}).get("item", {}).get("expected")
                for r in ordered]
    try:
        found = scorers.corpus_scores(specs, outputs, expected)
    except Exception as exc:  # noqa: BLE001 (a broken scorer must not lose the run's totals)
        error = f"{type(exc).__name__}: {exc}"
        logging.getLogger(__name__).warning("corpus scores could not be computed (%s); the run "
                                            "keeps its other totals", error, exc_info=True)
        names = [s if isinstance(s, str) else str(s.get("name")) for s in specs]
        labels = {"bleu": "BLEU", "chrf": "chrF"}
        n = sum(1 for e in expected if e is not None)
        return {key: {"metric": f"corpus {labels[name]}", "value": None, "n": n,
                      "no_output": sum(1 for o, e in zip(outputs, expected) if e is not None
                                       and o is None),
                      "signature": "", "sentence_metric": f"mean sentence {labels[name]}",
                      "error": error}
                for key, name in zip(scorers.scorer_keys(names), names) if name in labels}
    return {key: {**asdict(c), "sentence_metric": c.sentence_metric}
            for key, c in found.items()}


def compute_totals(project: Project, run_id: str, *, n: int, config: dict[str, Any],
                   segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Run totals from the stored items (so they are right after any number of resumes)."""
    from workbench.evaluate.scorers import classification_report

    rows = project.store.query("SELECT * FROM run_items WHERE run_id = ?", (run_id,))
    answered = [r for r in rows if r["output"] is not None]
    errors = sum(1 for r in rows if r["error"] is not None)
    parsed_flags = [r["parse_ok"] for r in answered if r["parse_ok"] is not None]
    parse_rate = (sum(parsed_flags) / len(parsed_flags)) if parsed_flags else \
        (1.0 if answered else float("nan"))
    fresh = [r["latency_s"] for r in answered if not r["cached"]]
    latencies = fresh or [r["latency_s"] for r in answered]
    costs = [r["cost_usd"] for r in answered if r["cost_usd"] is not None]
    cost = float(sum(costs)) if costs else 0.0
    per_request = cost / len(answered) if answered else float("nan")
    wall = float(sum(s.get("wall_s", 0.0) for s in segments))
    totals: dict[str, Any] = {
        "n": n, "done": len(rows), "answered": len(answered), "errors": errors,
        "error_rate": errors / len(rows) if rows else float("nan"),
        "parse_rate": parse_rate,
        "cached": sum(1 for r in answered if r["cached"]),
        "p50_latency_s": _percentile(latencies, 50),
        "p95_latency_s": _percentile(latencies, 95),
        "mean_latency_s": (sum(latencies) / len(latencies)) if latencies else float("nan"),
        "prompt_tokens": int(sum(r["prompt_tokens"] or 0 for r in answered)),
        "completion_tokens": int(sum(r["completion_tokens"] or 0 for r in answered)),
        "cost_usd": cost, "cost_per_request_usd": per_request,
        "cost_per_1k_requests_usd": per_request * 1000,
        "wall_s": wall, "items_per_s": (sum(s.get("items", 0) for s in segments) / wall)
        if wall > 0 else float("nan"),
        "segments": segments,
    }
    # Mean value of each scorer over the items that were scored.
    score_sums: dict[str, list[float]] = {}
    for r in rows:
        for key, s in (json.loads(r["scores"]) if r["scores"] else {}).items():
            if s.get("value") is not None and s.get("passed") is not None:
                score_sums.setdefault(key, []).append(float(s["value"]))
    totals["scores"] = {k: sum(v) / len(v) for k, v in score_sums.items()}
    totals["corpus"] = _corpus_totals(config, rows)
    metrics: dict[str, float] = {
        "parse_rate": parse_rate, "error_rate": totals["error_rate"],
        "p50_latency": totals["p50_latency_s"], "p95_latency": totals["p95_latency_s"],
        "cost_per_request": per_request,
    }
    for key in ("normalized_match", "exact_match"):
        if key in totals["scores"]:
            metrics["exact_match"] = totals["scores"][key]
            break
    if config.get("task_type") == "classification":
        expected, predicted = [], []
        for r in rows:
            parsed = json.loads(r["parsed"]) if r["parsed"] else {}
            exp = parsed.get("item", {}).get("expected")
            if exp is None:
                continue
            expected.append(exp)
            # A failed call or an unparsable output is a wrong answer: the user got no label.
            ok = r["output"] is not None and r["parse_ok"] != 0
            predicted.append(parsed.get("value") if ok else None)
        if expected:
            report = classification_report(expected, predicted,
                                           labels=config.get("labels") or None)
            metrics.update(report.as_metrics())
            totals["per_class"] = report.per_class.to_dict("records")
            totals["confusion"] = {"labels": list(report.confusion.index),
                                   "columns": list(report.confusion.columns),
                                   "matrix": report.confusion.to_numpy().tolist()}
    totals["metrics"] = metrics
    return _nan_to_none(totals)
