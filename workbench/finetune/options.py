"""What a fine-tune may be asked to do, checked before any model is loaded.

The defaults train SmolLM2-135M with LoRA on a two-core laptop in minutes: rank 8 on the attention
query and value projections (the original LoRA recipe), a learning rate high enough for a few
dozen steps to matter, batches of four, one epoch.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import WorkbenchError

# The linear layers of SmolLM2 (a Llama-architecture model) that LoRA can attach to.
TARGETABLE_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_EXAMPLES = 8  # below this nothing can be learnt, and validation loss means nothing
ADVISED_EXAMPLES = 50  # the guide's advice: 50-100 at least, 500+ ideally


class FinetuneError(WorkbenchError):
    """A fine-tune cannot start or go on; the message says why and what to change."""


class TemplateDrift(FinetuneError):
    """The training examples were not rendered the way the gateway renders the prompt."""


class AdapterMismatch(FinetuneError):
    """An adapter was trained for another base model, or its weights do not fit this one."""


class TrainOptions(BaseModel):
    """LoRA and training options. Every field has a default that works on 2 CPU cores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int = Field(8, description="LoRA rank r: the size of the update matrices")
    alpha: float = Field(16.0, description="LoRA alpha: the update is scaled by alpha / r")
    dropout: float = Field(0.05, description="dropout on the LoRA input")
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: float = 1e-3
    epochs: int = 1
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 384  # tokens of prompt + answer
    seed: int = 0
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int | None = None  # optimizer steps between validation losses; None: 4 an epoch
    patience: int = 3  # validations without a better loss before early stopping; 0: never stop
    checkpoint_every: int = 5  # optimizer steps between checkpoints (resume points)
    validation_examples: int = 32  # at most this many validation examples are scored
    too_long: Literal["refuse", "drop", "truncate"] = "refuse"
    # bfloat16 autocast halves step time on CPUs with AVX512-BF16/AMX; the LoRA weights and the
    # optimizer stay float32. "auto" uses it where the CPU has it.
    precision: Literal["auto", "bfloat16", "float32"] = "auto"

    @field_validator("target_modules", mode="before")
    @classmethod
    def _modules(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        modules = tuple(value)  # type: ignore[arg-type]
        unknown = [m for m in modules if m not in TARGETABLE_MODULES]
        if not modules or unknown:
            raise ValueError(f"target_modules must be some of {', '.join(TARGETABLE_MODULES)}"
                             + (f"; {', '.join(unknown)} is not one of them" if unknown else ""))
        return modules

    def check(self) -> None:
        """Options that pass validation but cannot work together."""
        problems = []
        if self.eval_every is not None and self.eval_every < 1:
            problems.append("eval_every must be at least 1 step (or None for four times an "
                            "epoch)")
        if problems:
            raise FinetuneError("These training options cannot work: " + "; ".join(problems)
                                + ".", "Change them and start again.")


_LIMITS = {
    "rank": (lambda v: v >= 1, "rank must be a whole number of at least 1 (8 is a good start; "
                               "0 would train nothing)"),
    "alpha": (lambda v: v > 0, "alpha must be above 0 (twice the rank is usual)"),
    "dropout": (lambda v: 0 <= v < 1, "dropout must be at least 0 and below 1"),
    "learning_rate": (lambda v: 0 < v <= 1, "learning_rate must be above 0 and at most 1 "
                                            "(1e-4 to 2e-3 is usual for LoRA)"),
    "epochs": (lambda v: 1 <= v <= 100, "epochs must be between 1 and 100"),
    "batch_size": (lambda v: 1 <= v <= 256, "batch_size must be between 1 and 256"),
    "gradient_accumulation": (lambda v: 1 <= v <= 256,
                              "gradient_accumulation must be between 1 and 256"),
    "max_length": (lambda v: 16 <= v <= 8192, "max_length must be between 16 and 8192 tokens"),
    "warmup_steps": (lambda v: v >= 0, "warmup_steps cannot be negative"),
    "weight_decay": (lambda v: v >= 0, "weight_decay cannot be negative"),
    "max_grad_norm": (lambda v: v > 0, "max_grad_norm must be above 0"),
    "patience": (lambda v: v >= 0, "patience cannot be negative (0 turns early stopping off)"),
    "checkpoint_every": (lambda v: v >= 1, "checkpoint_every must be at least 1 step"),
    "validation_examples": (lambda v: v >= 1, "validation_examples must be at least 1"),
}


def make_options(options: TrainOptions | dict | None = None, **changes: object) -> TrainOptions:
    """``TrainOptions`` from a record, a dict and/or keyword changes; every problem is reported
    in one ``FinetuneError`` that names the option and what it accepts."""
    base = options.model_dump() if isinstance(options, TrainOptions) else dict(options or {})
    base.update({k: v for k, v in changes.items() if v is not None})
    problems = []
    for key, (ok, sentence) in _LIMITS.items():
        value = base.get(key)
        if value is None:
            continue
        try:
            if not ok(value):
                problems.append(f"{sentence} (got {value!r})")
        except TypeError:
            problems.append(f"{key} must be a number (got {value!r})")
    if problems:
        raise FinetuneError("These training options cannot work: " + "; ".join(problems) + ".",
                            "Change them and start again; nothing was trained or written.")
    try:
        made = TrainOptions.model_validate(base)
    except ValidationError as exc:
        sentences = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "options"
            sentences.append(f"{where}: {err['msg']}")
        raise FinetuneError("These training options cannot work: " + "; ".join(sentences) + ".",
                            "Change them and start again; nothing was trained or written."
                            ) from None
    made.check()
    return made


def check_adapter_name(name: str) -> str:
    name = (name or "").strip()
    if not ADAPTER_NAME.match(name):
        raise FinetuneError(f"{name!r} cannot name an adapter.",
                            "Use letters, digits, '-', '_' or '.', starting with a letter or "
                            "digit, at most 64 characters (e.g. 'triage-lora').")
    return name
