"""The bridges' command-line verbs, registered by ``workbench.cli.build_parser``:

    workbench card export [--format md drawio svg csv xlsx] [--out DIR]
    workbench data export NAME [--version V] [--format csv|jsonl|parquet] [--out DIR]
    workbench runs export RUN_ID... --to mlflow [--tracking-uri URI] [--experiment NAME]
    workbench runs export RUN_ID... --to wandb [--out DIR] [--wandb-project NAME]
    workbench promptfoo import promptfooconfig.yaml [--model ID=MODEL] [--run]
    workbench promptfoo export RUN_ID --url http://127.0.0.1:8000 [--out FILE]
    workbench ragas compare [--limit N]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.bridges import BridgeError


def _project(args: argparse.Namespace):
    from workbench.project import find_project

    return find_project(args.project)


def cmd_card_export(args: argparse.Namespace) -> int:
    from workbench.bridges.card import CARD_FORMATS, export_card

    made = export_card(_project(args), args.out, formats=args.format or CARD_FORMATS)
    for fmt, path in made.items():
        print(f"{fmt:>6}  {path}")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from workbench.bridges.data import export_dataset

    version: Any = args.version
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    made = export_dataset(_project(args), args.name, version, format=args.format, out=args.out)
    print(made.sentence)
    print(f"Track it with DVC: dvc add {made.path.parent}")
    return 0


def cmd_runs_export(args: argparse.Namespace) -> int:
    from workbench.bridges.tracking import export_to_mlflow, export_to_wandb

    project = _project(args)
    if args.to == "mlflow":
        if args.out or args.wandb_project:
            raise BridgeError("--out and --wandb-project are for --to wandb.",
                              "Use --tracking-uri and --experiment with --to mlflow.")
        done = export_to_mlflow(project, args.run_ids, tracking_uri=args.tracking_uri,
                                experiment=args.experiment)
    else:
        if args.tracking_uri or args.experiment:
            raise BridgeError("--tracking-uri and --experiment are for --to mlflow.",
                              "Use --out and --wandb-project with --to wandb.")
        done = export_to_wandb(project, args.run_ids, out=args.out,
                               wandb_project=args.wandb_project)
    if args.json:
        print(json.dumps([{"run_id": d.run_id, "target": d.target, "tracked_id": d.tracked_id,
                           "location": d.location, "already": d.already} for d in done],
                         indent=2))
    else:
        for d in done:
            print(d.sentence)
    return 0


def cmd_promptfoo_import(args: argparse.Namespace) -> int:
    from workbench.bridges.promptfoo import import_promptfoo, parse_models, run_suite

    project = _project(args)
    made = import_promptfoo(project, args.config, name=args.name, models=parse_models(args.model),
                            input_var=args.input_var)
    print(made.sentence)
    for entry in made.unsupported:
        print(f"  not scored here: {entry['test']}: {entry['type']}")
    if args.run:
        for run in run_suite(project, made.name, limit=args.limit, progress=True,
                             confirm=args.yes):
            score = (run.totals.get("scores") or {}).get("assertions")
            shown = "n/a" if score is None else f"{score:.3f}"
            print(f"{run.run_id}: {run.prompt} on {run.model}: assertions {shown}")
    return 0


def cmd_promptfoo_export(args: argparse.Namespace) -> int:
    from workbench.bridges.promptfoo import export_promptfoo

    made = export_promptfoo(_project(args), args.run_id, base_url=args.url, out=args.out,
                            deployment=args.deployment)
    print(made.sentence)
    return 0


def cmd_ragas_compare(args: argparse.Namespace) -> int:
    from workbench.bridges.ragas import compare_with_ragas

    result = compare_with_ragas(limit=args.limit)
    print(result.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(result.attrs["sentence"])
    return 0 if result.attrs["agree"] else 1


def _project_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="project folder (default: WORKBENCH_PROJECT)")


def register(sub: Any, runs: argparse.ArgumentParser) -> None:
    """Add the bridges' verbs to the ``workbench`` parser (``runs`` gets ``export``)."""
    from workbench.bridges.card import CARD_FORMATS
    from workbench.bridges.data import DATA_FORMATS

    p = sub.add_parser("card", help="the project card: export it for other tools")
    card = p.add_subparsers(dest="card_command", required=True, metavar="ACTION")
    p = card.add_parser("export", help="the card as a Markdown brief, the sketch as Draw.io and "
                                       "SVG, the build-vs-buy matrix as CSV and XLSX")
    p.add_argument("--format", nargs="+", choices=CARD_FORMATS,
                   help="which files (default: all)")
    p.add_argument("--out", help="folder (default: PROJECT/exports/card)")
    _project_option(p)
    p.set_defaults(func=cmd_card_export)

    p = sub.add_parser("data", help="dataset versions: export them for other tools")
    data = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data.add_parser("export", help="a dataset version as CSV, JSONL or Parquet with its "
                                       "lineage as a sidecar JSON (a folder to `dvc add`)")
    p.add_argument("name", help="the dataset")
    p.add_argument("--version", help="version number or tag (default: the latest)")
    p.add_argument("--format", choices=DATA_FORMATS, default="csv")
    p.add_argument("--out", help="folder (default: PROJECT/exports/data/NAME)")
    _project_option(p)
    p.set_defaults(func=cmd_data_export)

    actions = runs.add_subparsers(dest="runs_command", required=False, metavar="ACTION")
    p = actions.add_parser("export", help="runs to MLflow (a tracking store) or to Weights & "
                                          "Biases (offline run folders for `wandb sync`)")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--to", choices=("mlflow", "wandb"), required=True)
    p.add_argument("--tracking-uri", help="MLflow: http://..., sqlite:///..., or a folder "
                                          "(default: sqlite in PROJECT/exports/mlflow)")
    p.add_argument("--experiment", help="MLflow experiment (default: the project's name)")
    p.add_argument("--out", help="W&B: folder for the offline runs (default: "
                                 "PROJECT/exports/wandb)")
    p.add_argument("--wandb-project", help="W&B project they sync to (default: from the "
                                           "project's name)")
    p.add_argument("--json", action="store_true")
    _project_option(p)
    p.set_defaults(func=cmd_runs_export)

    p = sub.add_parser("promptfoo", help="promptfoo configs in and out")
    pf = p.add_subparsers(dest="promptfoo_command", required=True, metavar="ACTION")
    p = pf.add_parser("import", help="a promptfooconfig.yaml as prompt versions, a dataset and "
                                     "scorers; unsupported assertions are listed")
    p.add_argument("config", help="promptfooconfig.yaml (or its folder)")
    p.add_argument("--name", help="suite, dataset and prompt name (default: the folder's)")
    p.add_argument("--model", action="append", default=[], metavar="PROVIDER_ID=MODEL",
                   help="map a promptfoo provider to a gateway model (repeatable)")
    p.add_argument("--input-var", help="the test variable that is the input")
    p.add_argument("--run", action="store_true", help="then run every prompt on every model")
    p.add_argument("--limit", type=int, help="with --run: the first N tests only")
    p.add_argument("--yes", action="store_true",
                   help="with --run: go ahead although a cost estimate is above the limit")
    _project_option(p)
    p.set_defaults(func=cmd_promptfoo_import)
    p = pf.add_parser("export", help="a run as a promptfoo config against the served "
                                     "deployment's OpenAI-compatible endpoint")
    p.add_argument("run_id")
    p.add_argument("--url", required=True, help="the served deployment, e.g. "
                                                "http://127.0.0.1:8000")
    p.add_argument("--deployment", help="its model id (default: the run's prompt name)")
    p.add_argument("--out", help="file (default: PROJECT/exports/promptfoo/RUN_ID/"
                                 "promptfooconfig.yaml)")
    _project_option(p)
    p.set_defaults(func=cmd_promptfoo_export)

    p = sub.add_parser("ragas", help="check the RAG metrics against Ragas' own (needs ragas)")
    rg = p.add_subparsers(dest="ragas_command", required=True, metavar="ACTION")
    p = rg.add_parser("compare", help="the id-based context precision and recall of the "
                                      "bundled help-centre set, by the workbench and by Ragas")
    p.add_argument("--limit", type=int, help="the first N questions only")
    p.set_defaults(func=cmd_ragas_compare)
