"""The ``workbench`` command. Errors print as one line with the fix and exit non-zero."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from workbench.errors import ProjectNotFound, WorkbenchError
from workbench.project import ENV_PROJECT, init_project, is_project, open_project

EXIT_ERROR = 1
EXIT_USAGE = 2


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
    project = init_project(args.path, name=args.name, sample=args.sample)
    print(f"Created {'the sample ' if args.sample else ''}project '{project.name}' at "
          f"{project.path}")
    print(f"Use it: export {ENV_PROJECT}={project.path}   then   workbench notebooks")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from workbench.phases import next_step

    project = _project_for(args.path)
    status = project.status()
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
    step = next_step(status["phases"])
    if step:
        where = (f"notebooks/{step['notebook']}" if step["available"]
                 else "its notebook is not written yet")
        print(f"Next: phase {step['number']}, {step['title']} ({where})")
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


def cmd_tour(args: argparse.Namespace) -> int:
    from workbench.tour import run_tour

    only = args.only.split(",") if args.only else None
    return run_tour(args.path, keep_going=True, only=only)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="LLMOps Workbench: the whole LLM lifecycle in a project folder.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create a project folder")
    p.add_argument("path")
    p.add_argument("--sample", action="store_true", help="start from the bundled sample project")
    p.add_argument("--name", help="project name (default: the folder name)")
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
