"""Adapters in a project: list them, import one trained elsewhere, merge one into a model.

An adapter is a folder ``adapters/NAME`` with PEFT's files (``adapter_config.json``,
``adapter_model.safetensors``) and ``training.json``; the gateway serves it as
``local/smollm2-135m:NAME``. An ``adapter`` record keeps its lineage in the database.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import RecordNotFound
from workbench.finetune.options import AdapterMismatch, FinetuneError, check_adapter_name
from workbench.fsutil import publish_dir, staged_dir
from workbench.finetune.trainer import (
    BASE_MODEL_ID,
    RECORD_FILE,
    AdapterRecord,
    _sha256,
    base_model_sha256,
)

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project
    from workbench.records import Stored

# Names a PEFT config may give the bundled model's base (the hub id, or a local copy of it).
_BASE_NAMES = ("smollm2-135m-instruct",)


def is_adapter_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and \
        (path / "adapter_config.json").is_file()


def adapter_record(project: Project, name: str) -> Stored[AdapterRecord] | None:
    try:
        return project.records.get(AdapterRecord, name)
    except RecordNotFound:
        return None


def list_adapters(project: Project) -> pd.DataFrame:
    """One row per adapter folder: what it learnt from, how training went, how to call it."""
    import pandas as pd

    from workbench.llm.gateway import BUNDLED_MODEL

    rows = []
    folder = project.adapters_dir
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not is_adapter_dir(path):
            continue
        stored = adapter_record(project, path.name)
        r = stored.value if stored else None
        rows.append({
            "adapter": path.name, "model id": f"{BUNDLED_MODEL}:{path.name}",
            "source": r.source if r else "folder",
            "prompt": f"{r.prompt} v{r.prompt_version}" if r and r.prompt else "",
            "dataset": f"{r.dataset} v{r.dataset_version}" if r and r.dataset else "",
            "status": r.status if r else "",
            "steps": r.steps if r else None,
            "best validation loss": r.best_validation_loss if r else None,
            "minutes": round(r.wall_time_s / 60, 1) if r and r.wall_time_s else None,
        })
    return pd.DataFrame(rows, columns=["adapter", "model id", "source", "prompt", "dataset",
                                       "status", "steps", "best validation loss", "minutes"])


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "adapter_config.json"
    if not path.is_file():
        raise FinetuneError(f"{folder} is not a PEFT adapter folder (no adapter_config.json).",
                            "Point at the folder PEFT's save_pretrained wrote.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"{path} cannot be read ({exc}).",
                            "Export the adapter again with PEFT.") from None


def _check_base(config: dict[str, Any], folder: Path) -> None:
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise AdapterMismatch(f"{folder} holds a {peft_type or 'unknown'} adapter; the workbench "
                              "serves LoRA adapters.", "Train a LoRA adapter (peft.LoraConfig).")
    base = str(config.get("base_model_name_or_path") or "")
    if not any(known in base.lower().replace("_", "-") for known in _BASE_NAMES):
        raise AdapterMismatch(f"{folder} was trained on '{base or 'an unnamed model'}', not on "
                              f"the bundled model ({BASE_MODEL_ID}); its weights would not fit.",
                              f"Import an adapter trained on {BASE_MODEL_ID}.")


def _load_onto_base(folder: Path):
    """The base model with the adapter attached: PEFT refuses weights whose shapes do not fit."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from workbench.llm import local

    local.quiet_transformers()
    base = AutoModelForCausalLM.from_pretrained(local.build_cache(), dtype=torch.float32)
    try:
        return PeftModel.from_pretrained(base, str(folder))
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise AdapterMismatch(f"The adapter in {folder} does not fit the bundled model: "
                              f"{str(exc).splitlines()[0][:300]}",
                              f"Import an adapter trained on {BASE_MODEL_ID} with the same "
                              "architecture.") from None


def import_adapter(project: Project, folder: str | os.PathLike, name: str, *,
                   overwrite: bool = False) -> Stored[AdapterRecord]:
    """Copy a PEFT LoRA adapter trained elsewhere (a GPU machine, Axolotl, the Hub) into the
    project as ``adapters/NAME``, after checking its base model is the bundled one and that its
    weights load onto it. Nothing is written when a check fails."""
    name = check_adapter_name(name)
    source = Path(folder).expanduser()
    config = _read_config(source)
    _check_base(config, source)
    _load_onto_base(source)
    target = project.adapters_dir / name
    if target.exists() and not overwrite:
        raise FinetuneError(f"An adapter named '{name}' exists already.",
                            "Choose another name or pass overwrite=True.")
    with staged_dir(target, f".staging-{name}-") as staging:
        for path in source.iterdir():
            if path.is_file() and path.name != RECORD_FILE:
                shutil.copy2(path, staging / path.name)
        files = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        record = AdapterRecord(
            base_model=BASE_MODEL_ID, base_model_sha256=base_model_sha256(), source="imported",
            options={k: config.get(k) for k in ("r", "lora_alpha", "lora_dropout",
                                                "target_modules") if k in config},
            status="imported", files=files)
        (staging / RECORD_FILE).write_text(json.dumps(
            {**record.model_dump(mode="json"), "imported_from": str(source.resolve())},
            indent=2) + "\n")
        publish_dir(staging, target, replace=True)
    return project.records.save(name, record)


def merge_adapter(project: Project, name: str, out: str | os.PathLike) -> Path:
    """Merge adapter ``name`` into the base weights and save a standalone model folder
    (safetensors + tokenizer) at ``out``: loadable by transformers (and convertible for other
    engines) without PEFT. Written to a temporary folder first, then renamed."""
    folder = project.adapters_dir / name
    if not is_adapter_dir(folder):
        raise FinetuneError(f"There is no adapter named '{name}' in {project.adapters_dir}.",
                            "Train one (FineTune) or import one (import_adapter) first.")
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise FinetuneError(f"{out} exists and is not empty.", "Choose a new folder.")
    from workbench.llm import local

    merged = _load_onto_base(folder).merge_and_unload()
    with staged_dir(out, f".{out.name}-") as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        local.load_tokenizer().save_pretrained(staging)
        if not publish_dir(staging, out, replace=False):
            raise FinetuneError(f"{out} was filled by something else while the adapter was "
                                "merged.", "Choose a new folder.")
    return out
