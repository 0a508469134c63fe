"""Training data for a GPU machine: OpenAI fine-tuning chat JSONL and an Axolotl config.

Both carry the conversations exactly as the gateway renders them (system prompt, few-shot turns,
the user message), with the expected answer as the assistant's turn. ``validate_openai_jsonl``
checks a file line by line against the documented chat format, so a file that would be refused
at upload is refused here first, with the line and the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.finetune.data import Example, TrainingData
from workbench.finetune.options import FinetuneError, TrainOptions

OPENAI_ROLES = ("system", "user", "assistant")
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight"}
OPENAI_MIN_EXAMPLES = 10  # the fine-tuning API refuses fewer


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    from workbench.fsutil import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _chat_rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [{"messages": ex.chat()} for ex in examples]


def validate_openai_jsonl(path: str | os.PathLike) -> list[str]:
    """Problems with an OpenAI chat fine-tuning file, one sentence each naming its line; an
    empty list means every line has the documented shape: a JSON object with a ``messages``
    list of ``{"role", "content"}`` objects (roles system/user/assistant, string content,
    optional ``name`` and, on assistant turns, ``weight`` 0 or 1), ending with an assistant turn
    that is learnt, and at least 10 examples."""
    problems: list[str] = []
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path} cannot be read as UTF-8 text: {exc}"]
    examples = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            problems.append(f"line {n}: empty line (the format has one JSON object a line)")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        examples += 1
        if not isinstance(row, dict):
            problems.append(f"line {n}: a JSON object is needed, not {type(row).__name__}")
            continue
        extra = set(row) - {"messages", "tools", "parallel_tool_calls", "functions"}
        if extra:
            problems.append(f"line {n}: unknown key(s) {', '.join(sorted(extra))}")
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append(f"line {n}: 'messages' must be a non-empty list")
            continue
        for i, message in enumerate(messages):
            where = f"line {n}, message {i}"
            if not isinstance(message, dict):
                problems.append(f"{where}: must be an object")
                continue
            unknown = set(message) - OPENAI_MESSAGE_KEYS
            if unknown:
                problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            role = message.get("role")
            if role not in OPENAI_ROLES:
                problems.append(f"{where}: role must be one of {', '.join(OPENAI_ROLES)}, "
                                f"not {role!r}")
            content = message.get("content")
            if not isinstance(content, str):
                problems.append(f"{where}: content must be a string")
            elif not content.strip() and role == "assistant":
                problems.append(f"{where}: the assistant's content is empty")
            if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
                problems.append(f"{where}: weight is allowed on assistant turns only, as 0 or 1")
        roles = [m.get("role") for m in messages if isinstance(m, dict)]
        if "assistant" not in roles:
            problems.append(f"line {n}: no assistant message, so there is nothing to learn")
        elif roles[-1] != "assistant":
            problems.append(f"line {n}: the last message must be the assistant's answer")
        elif isinstance(messages[-1], dict) and messages[-1].get("weight") == 0:
            problems.append(f"line {n}: the final answer has weight 0, so nothing is learnt")
    if examples < OPENAI_MIN_EXAMPLES:
        problems.append(f"{examples} example(s): the fine-tuning API needs at least "
                        f"{OPENAI_MIN_EXAMPLES}")
    return problems


def export_openai(data: TrainingData, folder: str | os.PathLike) -> dict[str, Path]:
    """``train.jsonl`` and ``validation.jsonl`` in OpenAI's chat fine-tuning format, each checked
    with ``validate_openai_jsonl``; raises ``FinetuneError`` listing the problems otherwise."""
    folder = Path(folder)
    out = {"train": _write_jsonl(folder / "train.jsonl", _chat_rows(data.train))}
    if data.validation:
        out["validation"] = _write_jsonl(folder / "validation.jsonl",
                                         _chat_rows(data.validation))
    for split, path in out.items():
        problems = [p for p in validate_openai_jsonl(path)
                    if split == "train" or "at least" not in p]
        if problems:
            raise FinetuneError(f"{path} does not match the OpenAI chat format: "
                                + "; ".join(problems[:5]) + ".",
                                "Fix the prompt or the data and export again.")
    return out


def axolotl_config(data: TrainingData, options: TrainOptions, *, train_file: str = "train.jsonl",
                   validation_file: str | None = "validation.jsonl",
                   output_dir: str = "./outputs/lora") -> dict[str, Any]:
    """An Axolotl config (as a dict) for the same LoRA on a GPU: same base model, rank, alpha,
    dropout, target modules, learning rate, epochs, batches, sequence length and seed; the
    model's own chat template; loss on the assistant's turns only."""
    from workbench.finetune.trainer import BASE_MODEL_ID

    dataset = {"path": train_file, "type": "chat_template", "field_messages": "messages",
               "message_property_mappings": {"role": "role", "content": "content"},
               "roles_to_train": ["assistant"]}
    config: dict[str, Any] = {
        "base_model": BASE_MODEL_ID,
        "model_type": "AutoModelForCausalLM",
        "tokenizer_type": "AutoTokenizer",
        "chat_template": "tokenizer_default",
        "datasets": [dataset],
        "dataset_prepared_path": "./prepared",
        "output_dir": output_dir,
        "adapter": "lora",
        "lora_r": options.rank,
        "lora_alpha": options.alpha,
        "lora_dropout": options.dropout,
        "lora_target_modules": list(options.target_modules),
        "sequence_len": options.max_length,
        "sample_packing": False,
        "train_on_inputs": False,
        "micro_batch_size": options.batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation,
        "num_epochs": options.epochs,
        "optimizer": "adamw_torch",
        "lr_scheduler": "linear",
        "learning_rate": options.learning_rate,
        "warmup_steps": options.warmup_steps,
        "weight_decay": options.weight_decay,
        "max_grad_norm": options.max_grad_norm,
        "seed": options.seed,
        "bf16": "auto",
        "logging_steps": 1,
        "saves_per_epoch": 1,
    }
    if validation_file and data.validation:
        config["test_datasets"] = [{**dataset, "path": validation_file, "split": "train"}]
        config["evals_per_epoch"] = 4
        if options.patience:
            config["early_stopping_patience"] = options.patience
    else:
        config["val_set_size"] = 0
    return config


def export_axolotl(data: TrainingData, options: TrainOptions,
                   folder: str | os.PathLike) -> dict[str, Path]:
    """``axolotl.yaml`` with ``train.jsonl`` / ``validation.jsonl`` beside it (paths relative to
    the folder: run ``axolotl train axolotl.yaml`` from there)."""
    import yaml

    from workbench.fsutil import atomic_write_text

    folder = Path(folder)
    files = export_openai(data, folder)
    config = axolotl_config(data, options, validation_file="validation.jsonl"
                            if "validation" in files else None)
    header = (f"# Axolotl config written by the LLMOps Workbench: '{data.prompt}' "
              f"v{data.prompt_version} on {data.dataset} v{data.dataset_version}.\n"
              "# Run from this folder: axolotl train axolotl.yaml\n")
    path = folder / "axolotl.yaml"
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return {**files, "config": path}
