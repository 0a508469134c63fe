"""Phases 3, 4 and 6 out: runs to an MLflow tracking store or to Weights & Biases offline runs.

Each workbench run becomes one tracked run with:

- **params**: what the run was asked to do (prompt and version, model, dataset and version,
  split, task type, scorers, the model options);
- **metrics**: the run's totals (quality metrics, parse and error rates, latency percentiles,
  cost, tokens) and the mean of every scorer (``score.<name>``); values that were not measured
  are left out, never written as 0;
- **the per-item table**: input, expected, output, parsed value, latency, cost, error and each
  scorer's value, one row per item (an MLflow table artifact ``items.json``, a W&B
  ``wandb.Table`` named ``items``), plus the prompt version as ``prompt.json``.

MLflow (``export_to_mlflow``): any tracking URI: a server (``http://...``: checked to answer
before anything is written), a SQLite database (``sqlite:///path/mlflow.db``, the default, at
``<project>/exports/mlflow/``) or a folder store (``file:///path/mlruns``). Exporting a run again
finds the tracked run by its ``workbench.run_id`` tag and writes no duplicate. A failure part way
deletes the half-written tracked run. ``mlflow ui --backend-store-uri URI`` shows them (the UI is
in the full ``mlflow`` package).

W&B (``export_to_wandb``): an offline run folder per run (``WANDB_MODE=offline``: nothing leaves
the machine), written in a temporary folder and moved into ``<project>/exports/wandb/`` once
whole. ``wandb sync <project>/exports/wandb/offline-run-*`` uploads them when the user wants
(the W&B run id is derived from the workbench run id, so syncing again updates the same run);
``wandb leet inspect --summary FOLDER`` reads one locally.

Both packages are optional: ``pip install 'llmops-workbench[mlflow]'`` or ``[wandb]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.bridges import BridgeError, exports_dir
from workbench.errors import MissingDependency

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project
    from workbench.runs import Run

TARGETS = ("mlflow", "wandb")
RUN_ID_TAG = "workbench.run_id"
ITEMS_ARTIFACT = "items.json"
_ITEM_COLUMNS = ["item_id", "position", "input", "expected", "output", "parsed", "parse_ok",
                 "parse_error", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd",
                 "cached", "error"]
_TOTALS = ("n", "done", "answered", "errors", "cached", "prompt_tokens", "completion_tokens",
           "cost_usd", "cost_per_1k_requests_usd", "mean_latency_s", "wall_s", "items_per_s")


@dataclass(frozen=True)
class TrackedRun:
    """One workbench run as the other tool now holds it."""

    target: str  # "mlflow" or "wandb"
    run_id: str  # the workbench run
    tracked_id: str  # MLflow's run id, or the W&B run id
    location: str  # the tracking URI, or the offline run folder
    already: bool = False  # it was exported before: nothing new was written

    @property
    def sentence(self) -> str:
        if self.target == "mlflow":
            what = "already in" if self.already else "exported to"
            return f"Run {self.run_id} {what} MLflow at {self.location} as run {self.tracked_id}."
        return (f"Run {self.run_id} written as the W&B offline run {self.location} "
                f"(upload it with `wandb sync {self.location}`).")


# -- what goes out -------------------------------------------------------------------------------

def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def run_params(run: Run) -> dict[str, str]:
    """What the run was asked to do, as flat text parameters."""
    config = run.config
    params: dict[str, Any] = {
        "prompt": run.prompt, "prompt_version": run.prompt_version, "model": run.model,
        "dataset": run.dataset, "dataset_version": run.dataset_version, "split": run.split,
        "task_type": config.get("task_type"), "n_items": config.get("n_items"),
        "limit": config.get("limit"), "cache": config.get("cache"),
        "scorers": ", ".join(s.get("name", "?") for s in config.get("scorers") or []),
    }
    for key, value in sorted((config.get("options") or {}).items()):
        params[f"option.{key}"] = value
    out = {}
    for key, value in params.items():
        if value is None or value == "":
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return out


def run_metrics(run: Run) -> dict[str, float]:
    """The run's measured numbers: its metrics, scorer means (``score.<key>``) and totals."""
    totals = run.totals or {}
    metrics: dict[str, float] = {}
    for key, value in (totals.get("metrics") or {}).items():
        if (number := _finite(value)) is not None:
            metrics[key] = number
    for key, value in (totals.get("scores") or {}).items():
        if (number := _finite(value)) is not None:
            metrics[f"score.{key}"] = number
    for key in _TOTALS:
        if (number := _finite(totals.get(key))) is not None:
            metrics.setdefault(key, number)
    return metrics


def run_items(run: Run) -> pd.DataFrame:
    """The per-item table: plain values only (structured ones as JSON text)."""
    items = run.items
    scores = [c for c in items.columns if c.startswith("score.")]
    table = items[[c for c in _ITEM_COLUMNS if c in items.columns] + scores].copy()
    for column in ("expected", "parsed"):
        if column in table:
            table[column] = [v if v is None or isinstance(v, str) else
                             json.dumps(v, default=str, ensure_ascii=False)
                             for v in table[column]]
    return table.astype(object).where(table.notna(), None)


def _prompt_json(project: Project, run: Run) -> str:
    from workbench.prompts import load_prompt

    try:
        stored = load_prompt(project, run.prompt, run.prompt_version)
    except Exception:  # a prompt deleted by hand: the run still goes out without it
        return json.dumps({"name": run.prompt, "version": run.prompt_version})
    return json.dumps({"name": run.prompt, "version": stored.version,
                       **stored.value.model_dump(mode="json")}, indent=2, ensure_ascii=False)


def _runs(project: Project, run_ids: str | Sequence[str]) -> list[Run]:
    from workbench.runs import load_run

    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    if not ids:
        raise BridgeError("No runs to export.", "Pass one or more run ids (list_runs(project)).")
    return [load_run(project, run_id) for run_id in ids]  # an unknown id fails before any write


# -- MLflow --------------------------------------------------------------------------------------

def _mlflow_client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependency("Exporting runs to MLflow",
                                "pip install 'llmops-workbench[mlflow]'") from None
    if uri.startswith("sqlite:"):
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise MissingDependency("An MLflow SQLite store",
                                    "pip install 'llmops-workbench[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def default_mlflow_uri(project: Project) -> str:
    return f"sqlite:///{exports_dir(project, 'mlflow') / 'mlflow.db'}"


def _check_answers(uri: str) -> None:
    """A tracking server must answer before anything is written (MLflow's own client would
    retry for minutes)."""
    import httpx

    try:
        reply = httpx.get(uri.rstrip("/") + "/health", timeout=5.0)
    except httpx.HTTPError as exc:
        raise BridgeError(f"The MLflow tracking server at {uri} does not answer "
                          f"({type(exc).__name__}); nothing was exported.",
                          "Start it (mlflow server --host 127.0.0.1 --port 5000) or pass "
                          "another tracking URI, e.g. sqlite:///mlflow.db.") from None
    if reply.status_code >= 400:
        raise BridgeError(f"{uri} answered {reply.status_code} to /health, so it is not an "
                          "MLflow tracking server that can take runs; nothing was exported.",
                          "Check the URL (the server's base URL, without /api).")


@contextlib.contextmanager
def _mlflow_env(uri: str) -> Iterator[None]:
    # A folder store is in "maintenance mode" in MLflow 3 and refused unless allowed; the user
    # chose it by passing its URI. A server gets a few quick retries, not MLflow's minutes.
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    if not uri.startswith(("http:", "https:", "sqlite:", "postgresql", "mysql", "databricks")):
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    saved = {k: os.environ.get(k) for k in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def _normalise_uri(uri: str) -> str:
    if "://" in uri or uri.startswith(("sqlite:", "databricks")):
        return uri
    return Path(uri).expanduser().resolve().as_uri()  # a plain folder: a folder store


def export_to_mlflow(project: Project, run_ids: str | Sequence[str], *,
                     tracking_uri: str | None = None,
                     experiment: str | None = None) -> list[TrackedRun]:
    """Log each run to MLflow (see the module docstring). ``tracking_uri`` defaults to a SQLite
    store in ``<project>/exports/mlflow``; ``experiment`` to the project's name."""
    runs = _runs(project, run_ids)
    uri = _normalise_uri(tracking_uri) if tracking_uri else default_mlflow_uri(project)
    if uri.startswith(("http:", "https:")):
        _check_answers(uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    name = experiment or project.name
    with _mlflow_env(uri):
        client = _mlflow_client(uri)
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_experiment_by_name(name)
            if found is None:
                artifacts = None
                if uri.startswith("sqlite:///"):  # beside the database, not in the cwd
                    folder = Path(uri[len("sqlite:///"):]).parent / "artifacts"
                    artifacts = folder.resolve().as_uri()
                experiment_id = client.create_experiment(name, artifact_location=artifacts)
            else:
                experiment_id = found.experiment_id
        except MlflowException as exc:
            raise BridgeError(f"MLflow at {uri} refused the experiment {name!r}: "
                              f"{exc.message}", "Check the tracking URI and that the store "
                              "is writable; nothing was exported.") from None
        return [_log_mlflow_run(project, client, uri, experiment_id, run) for run in runs]


def _log_mlflow_run(project: Project, client: Any, uri: str, experiment_id: str,
                    run: Run) -> TrackedRun:
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    existing = client.search_runs([experiment_id],
                                  filter_string=f"tags.`{RUN_ID_TAG}` = '{run.run_id}'",
                                  max_results=1)
    if existing:
        return TrackedRun("mlflow", run.run_id, existing[0].info.run_id, uri, already=True)
    params, metrics, items = run_params(run), run_metrics(run), run_items(run)
    tags = {RUN_ID_TAG: run.run_id, "workbench.project": project.name,
            "workbench.status": run.status, "mlflow.runName": run.name or run.run_id,
            "mlflow.source.name": "llmops-workbench"}
    start_ms = int(run.created_at * 1000)
    tracked = client.create_run(experiment_id, start_time=start_ms, tags=tags,
                                run_name=run.name or run.run_id)
    tracked_id = tracked.info.run_id
    try:
        client.log_batch(tracked_id,
                         metrics=[Metric(k, v, start_ms, 0) for k, v in metrics.items()],
                         params=[Param(k, v[:6000]) for k, v in params.items()])
        client.log_table(tracked_id, data=items, artifact_file=ITEMS_ARTIFACT)
        client.log_text(tracked_id, _prompt_json(project, run), "prompt.json")
        client.log_dict(tracked_id, {"config": run.config, "totals": run.totals},
                        "workbench_run.json")
        wall = _finite((run.totals or {}).get("wall_s")) or 0.0
        client.set_terminated(tracked_id, "FINISHED" if run.status == "finished" else "FAILED",
                              end_time=start_ms + int(wall * 1000))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            client.delete_run(tracked_id)  # no half-written run is left to be mistaken
        if isinstance(exc, MlflowException):
            raise BridgeError(f"MLflow refused run {run.run_id}: {exc.message}",
                              "Nothing of it was kept; check the store and export again.") \
                from None
        raise
    return TrackedRun("mlflow", run.run_id, tracked_id, uri)


# -- Weights & Biases ------------------------------------------------------------------------------

def _wandb():
    try:
        import wandb
    except ImportError:
        raise MissingDependency("Exporting runs to Weights & Biases",
                                "pip install 'llmops-workbench[wandb]'") from None
    return wandb


def wandb_run_id(run_id: str) -> str:
    """The W&B id of a workbench run: the same on every export, so a second sync updates it."""
    return "wb" + hashlib.sha256(run_id.encode()).hexdigest()[:14]


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text).strip("-")
    return "-".join(filter(None, out.split("-")))[:60] or "workbench"


def export_to_wandb(project: Project, run_ids: str | Sequence[str], *,
                    out: str | os.PathLike | None = None,
                    wandb_project: str | None = None) -> list[TrackedRun]:
    """Write each run as a W&B offline run folder in ``out`` (default
    ``<project>/exports/wandb``). ``wandb_project`` (default: the project's name as a slug) is
    where ``wandb sync`` puts it."""
    runs = _runs(project, run_ids)
    wandb = _wandb()
    folder = Path(out).expanduser() if out is not None else exports_dir(project, "wandb")
    folder.mkdir(parents=True, exist_ok=True)
    return [_write_wandb_run(wandb, project, folder, wandb_project or _slug(project.name), run)
            for run in runs]


def _write_wandb_run(wandb: Any, project: Project, folder: Path, wandb_project: str,
                     run: Run) -> TrackedRun:
    params, metrics, items = run_params(run), run_metrics(run), run_items(run)
    tracked_id = wandb_run_id(run.run_id)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    settings = wandb.Settings(
        mode="offline", silent=True, quiet=True, console="off", save_code=False,
        disable_code=True, disable_git=True, disable_job_creation=True, x_disable_stats=True,
        x_disable_meta=True, x_disable_machine_info=True, x_disable_viewer=True)
    try:
        tracked = wandb.init(project=wandb_project, id=tracked_id, name=run.name or run.run_id,
                             dir=str(staging), config=params, job_type="evaluation",
                             tags=["llmops-workbench", run.model.split("/")[0]],
                             reinit="create_new", settings=settings)
        try:
            score_columns = [c for c in items.columns if c.startswith("score.")]
            for row in items.to_dict("records"):  # per-item charts: step = item position
                point = {k: row[k] for k in ("latency_s", "cost_usd", *score_columns)
                         if _finite(row.get(k)) is not None}
                if point:
                    tracked.log(point, step=int(row["position"]))
            tracked.log({"items": wandb.Table(dataframe=items.astype(str).where(
                items.notna(), None))})
            tracked.summary.update(metrics)
            tracked.summary[RUN_ID_TAG] = run.run_id
            # files in the run's own folder go with it when it is synced
            Path(tracked.dir, "prompt.json").write_text(_prompt_json(project, run))
        except BaseException:
            tracked.finish(exit_code=1)
            raise
        tracked.finish()
        made = sorted((staging / "wandb").glob(f"offline-run-*-{tracked_id}"))
        if not made:
            raise BridgeError(f"W&B wrote no offline run for {run.run_id}.",
                              "Check that the wandb package works (wandb offline).")
        target = folder / made[-1].name
        for old in folder.glob(f"offline-run-*-{tracked_id}"):  # an earlier export of it
            shutil.rmtree(old, ignore_errors=True)
        os.replace(made[-1], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrackedRun("wandb", run.run_id, tracked_id, str(target))


def export_runs(project: Project, run_ids: str | Sequence[str], *, to: str = "mlflow",
                **options: Any) -> list[TrackedRun]:
    """``export_to_mlflow`` (``to="mlflow"``: ``tracking_uri``, ``experiment``) or
    ``export_to_wandb`` (``to="wandb"``: ``out``, ``wandb_project``)."""
    if to == "mlflow":
        return export_to_mlflow(project, run_ids, **options)
    if to == "wandb":
        return export_to_wandb(project, run_ids, **options)
    raise BridgeError(f"Runs go out to {' or '.join(TARGETS)}, not {to!r}.",
                      "Pass to='mlflow' or to='wandb'.")


__all__ = ["TARGETS", "TrackedRun", "default_mlflow_uri", "export_runs", "export_to_mlflow",
           "export_to_wandb", "run_items", "run_metrics", "run_params", "wandb_run_id"]
