"""LoRA training of the bundled model on the CPU, with PEFT and a plain PyTorch loop.

One ``FineTune`` is one training of one adapter. Everything that can be wrong is checked when it
is made (options, data, the adapter name, parity with the gateway's rendering), before the model
is loaded. ``estimate()`` times real steps first; ``run()`` trains with validation loss, early
stopping, the best weights kept, and a checkpoint every few steps in ``<project>/.training/NAME``
so a killed process resumes where it was (``resume=True``). ``stop()`` (the widget's Stop button)
ends between steps and keeps the best weights. The adapter lands in ``adapters/NAME`` in one
rename: standard PEFT files plus ``training.json``; an ``adapter`` record keeps its lineage.

The loop is the one a PEFT tutorial writes (forward with labels, backward, clip, AdamW, a linear
schedule); ``benchmarks/bench_finetune.py`` holds it to within 5% of such a loop.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.finetune.data import Example, TrainingData, check_parity
from workbench.finetune.options import (
    FinetuneError,
    TrainOptions,
    check_adapter_name,
    make_options,
)
from workbench.records import Record

if TYPE_CHECKING:
    from workbench.project import Project

BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what adapter_config.json names
CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
RECORD_FILE = "training.json"
VALIDATION_BATCH = 16  # label value PyTorch's cross-entropy skips: prompt and padding tokens


class AdapterRecord(Record):
    """What an adapter is: its base model, what it learnt from, how, and how it went."""

    kind: ClassVar[str] = "adapter"
    base_model: str = BASE_MODEL_ID
    base_model_sha256: str = ""
    source: str = "trained"  # or "imported"
    prompt: str | None = None
    prompt_version: int | None = None
    dataset: str | None = None
    dataset_version: int | None = None
    data_fingerprint: str | None = None
    train_examples: int = 0
    validation_examples: int = 0
    options: dict = {}
    status: str = "finished"  # finished, early_stopped, stopped
    steps: int = 0
    total_steps: int = 0
    best_step: int | None = None
    best_validation_loss: float | None = None
    losses: list[dict] = []  # {"step", "epoch", "train_loss", "validation_loss"?, "lr", "time_s"}
    wall_time_s: float = 0.0
    peak_memory_mb: float | None = None
    examples_per_s: float | None = None
    files: dict[str, str] = {}  # file name -> sha256


# -- machine facts -------------------------------------------------------------------------------

def _reset_peak_memory() -> None:
    """Start a fresh peak-memory measurement for this process (Linux; elsewhere a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_memory_mb() -> float | None:
    """The process's peak resident memory since the last reset, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):
        return None


def compute_dtype(options: TrainOptions) -> str:
    """The dtype the forward and backward passes run in: bfloat16 where the CPU has it."""
    if options.precision != "auto":
        return options.precision
    from workbench.llm.local import cpu_supports_bf16

    return "bfloat16" if cpu_supports_bf16() else "float32"


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_model_sha256() -> str:
    """The hash of the bundled model's weights (the safetensors cache), computed once and kept
    beside them."""
    from workbench.fsutil import atomic_write_text
    from workbench.llm import local

    weights = local.build_cache() / "model.safetensors"
    sidecar = weights.with_suffix(".sha256")
    stat = weights.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        saved_stamp, saved_hash = sidecar.read_text().split()
        if saved_stamp == stamp:
            return saved_hash
    except (OSError, ValueError):
        pass
    digest = _sha256(weights)
    try:
        atomic_write_text(sidecar, f"{stamp} {digest}\n")
    except OSError:
        pass  # a read-only shared cache: hash again next time
    return digest


def training_dir(project: Project, name: str) -> Path:
    """Where checkpoints of adapter ``name`` live while it trains (outside ``adapters/``, so
    nothing half-made is ever mistaken for an adapter)."""
    return project.path / ".training" / name


# -- progress --------------------------------------------------------------------------------------

@dataclass
class TrainingState:
    """What the widget and the progress bar show; a plain value, safe to copy between threads."""

    name: str
    status: str = "ready"  # ready, loading, training, stopping, finished, early_stopped,
    #                         stopped, interrupted, failed
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 1
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    validation_losses: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    best_validation_loss: float | None = None
    examples_per_s: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    resumed_from: int | None = None
    checkpoint_step: int | None = None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "early_stopped", "stopped", "interrupted", "failed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """Time and memory before starting, from real steps on this machine."""

    seconds_per_step: float
    validation_seconds: float  # one validation pass
    total_steps: int
    validations: int
    total_seconds: float
    peak_memory_mb: float | None
    examples_per_s: float

    def __str__(self) -> str:
        mem = f", peak memory about {self.peak_memory_mb:,.0f} MB" if self.peak_memory_mb else ""
        return (f"About {_duration(self.total_seconds)} for {self.total_steps} steps "
                f"({self.seconds_per_step:.2f} s a step, {self.examples_per_s:.1f} examples/s, "
                f"{self.validations} validations of {self.validation_seconds:.1f} s){mem}.")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


@dataclass
class TrainingResult:
    name: str
    status: str
    adapter_dir: Path
    record: AdapterRecord
    model_id: str

    def __str__(self) -> str:
        r = self.record
        best = (f", best validation loss {r.best_validation_loss:.3f} at step {r.best_step}"
                if r.best_validation_loss is not None else "")
        return (f"Adapter '{self.name}' ({self.status}) after {r.steps}/{r.total_steps} steps in "
                f"{_duration(r.wall_time_s)}{best}. Use it as {self.model_id}.")

    def losses_frame(self):
        import pandas as pd

        return pd.DataFrame(self.record.losses)


# -- the training --------------------------------------------------------------------------------

class FineTune:
    """One LoRA training of the bundled model (see the module's docstring)."""

    def __init__(self, project: Project, data: TrainingData, name: str, *,
                 options: TrainOptions | dict | None = None, prompt: str | None = None,
                 prompt_version: int | str | None = None, resume: bool = False,
                 overwrite: bool = False):
        self.project = project
        self.data = data
        self.name = check_adapter_name(name)
        self.options = make_options(options)
        if self.options.max_length < max((e.length for e in data.examples), default=0):
            raise FinetuneError(f"The training data was built for up to {data.max_length} "
                                f"tokens, above these options' max_length "
                                f"({self.options.max_length}).",
                                "Build the data again with the same options.")
        self.target = project.adapters_dir / self.name
        self.overwrite = overwrite or resume
        # The adapter will be asked exactly what the gateway sends: refuse drifted data now.
        self.parity = check_parity(project, data, prompt=prompt, version=prompt_version)
        self.workdir = training_dir(project, self.name)
        self._checkpoint: dict[str, Any] | None = None
        # With overwrite, an old checkpoint of this name is dropped when training starts (not
        # now: a notebook makes a FineTune for every change of an option).
        self.discards_checkpoint: int | str | None = None
        if resume:
            self._checkpoint = self._read_checkpoint()
        elif (self.workdir / CHECKPOINT_FILE).is_file() and overwrite:
            self.discards_checkpoint = self._peek_step()
        elif (self.workdir / CHECKPOINT_FILE).is_file():
            step = self._peek_step()
            raise FinetuneError(f"A training of '{self.name}' was interrupted at step {step} "
                                f"and can be resumed ({self.workdir}).",
                                "Pass resume=True (--resume) to continue it, or overwrite=True "
                                "(--overwrite) to start over.")
        if self.target.exists() and not overwrite and not resume:
            raise FinetuneError(f"An adapter named '{self.name}' exists already "
                                f"({self.target}).",
                                "Choose another name, or pass overwrite=True (--overwrite) to "
                                "replace it when the new one is finished.")
        n = len(data.train)
        bs, acc = self.options.batch_size, self.options.gradient_accumulation
        self.batches_per_epoch = math.ceil(n / bs)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / acc)
        self.total_steps = self.steps_per_epoch * self.options.epochs
        self.eval_every = self.options.eval_every or max(1, math.ceil(self.steps_per_epoch / 4))
        self.compute_dtype = compute_dtype(self.options)
        self.state = TrainingState(name=self.name, total_steps=self.total_steps,
                                   epochs=self.options.epochs)
        self._stop = threading.Event()
        self._listeners: list[Callable[[TrainingState], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.result: TrainingResult | None = None
        self._model = None
        self._tokenizer = None

    # -- public ---------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        from workbench.llm.gateway import BUNDLED_MODEL

        return f"{BUNDLED_MODEL}:{self.name}"

    def on_update(self, listener: Callable[[TrainingState], None]) -> None:
        """Call ``listener(state)`` after every step, validation and status change."""
        self._listeners.append(listener)

    def stop(self) -> None:
        """Ask the training to end after the step it is in; the best weights are kept."""
        self._stop.set()
        if not self.state.done:
            self._update(status="stopping", message="Stopping after this step ...")

    def start(self, thread_class: type[threading.Thread] = threading.Thread) -> threading.Thread:
        """Train on a background thread (notebooks: the cell returns and Stop stays clickable).
        ``wait()`` joins it; failures land in ``error``. A marimo notebook passes ``mo.Thread``,
        whose threads may update widgets."""
        if self._thread is not None:
            return self._thread

        def work() -> None:
            try:
                self.run(progress=False)
            except BaseException as exc:  # kept for wait(); the state says it failed
                self.error = exc

        self._thread = thread_class(target=work, name=f"finetune-{self.name}", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> TrainingResult | None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def estimate(self) -> Estimate:
        """Time two real steps (a warm-up and a measured one) and a validation batch on this
        machine, then restore the weights: the estimate trains nothing."""
        import torch

        model, _ = self._load()
        lora = self._lora_state()
        rng = torch.get_rng_state()
        _reset_peak_memory()
        optimizer = self._optimizer(model)
        ordered = sorted(self.data.train, key=lambda e: e.length)
        median = ordered[len(ordered) // 2]
        batch = [median] * min(self.options.batch_size, len(ordered))
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            self._micro_step(model, batch, 1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timings.append(time.perf_counter() - started)
        step_s = timings[-1] * self.options.gradient_accumulation
        val_s = 0.0
        if self.data.validation:
            started = time.perf_counter()
            self._validation_loss(model, self.data.validation[:self.options.batch_size])
            per_batch = time.perf_counter() - started
            val_s = per_batch * math.ceil(len(self.data.validation) / self.options.batch_size)
        self._set_lora_state(lora)
        torch.set_rng_state(rng)
        validations = math.ceil(self.total_steps / self.eval_every) if self.data.validation \
            else 0
        examples = self.options.batch_size * self.options.gradient_accumulation
        return Estimate(seconds_per_step=step_s, validation_seconds=val_s,
                        total_steps=self.total_steps, validations=validations,
                        total_seconds=step_s * self.total_steps + val_s * validations,
                        peak_memory_mb=peak_memory_mb(),
                        examples_per_s=examples / step_s if step_s else 0.0)

    def run(self, *, progress: bool = True) -> TrainingResult:
        """Train (or resume), write the adapter, and return what happened. Ctrl-C or SIGTERM
        ends between steps with a checkpoint to resume from."""
        from workbench.runs import _SignalsAsFlags

        bar = None
        if self.discards_checkpoint is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.discards_checkpoint = None
        try:
            self._update(status="loading", message="Loading the bundled model ...")
            model, _ = self._load()
            optimizer = self._optimizer(model)
            scheduler = self._scheduler(optimizer)
            history: list[dict[str, Any]] = []
            best: dict[str, Any] | None = None
            best_step = best_loss = None
            step = 0
            wall_before = 0.0
            if self._checkpoint is not None:
                step, history, best, best_step, best_loss, wall_before = self._restore(
                    model, optimizer, scheduler, self._checkpoint)
                self._update(resumed_from=step,
                             train_losses=[(h["step"], h["train_loss"]) for h in history],
                             validation_losses=[(h["step"], h["validation_loss"]) for h in history
                                                if h.get("validation_loss") is not None],
                             best_step=best_step, best_validation_loss=best_loss, step=step)
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=self.total_steps, initial=step, unit="step",
                           desc=f"fine-tune {self.name}", file=sys.stderr)
            _reset_peak_memory()
            started = time.perf_counter()
            first_step = step
            examples_done = 0
            status = "finished"
            since_best = 0
            self._update(status="training", message="")
            with _SignalsAsFlags() as signals:
                while step < self.total_steps:
                    if self._stop.is_set():
                        status = "stopped"
                        break
                    if signals.count:
                        status = "interrupted"
                        break
                    epoch = step // self.steps_per_epoch
                    loss = self._optimizer_step(model, optimizer, scheduler, step)
                    step += 1
                    examples_done += self._examples_in_step(step - 1)
                    elapsed = time.perf_counter() - started
                    entry = {"step": step, "epoch": round(step / self.steps_per_epoch, 3),
                             "train_loss": loss, "lr": scheduler.get_last_lr()[0],
                             "time_s": round(wall_before + elapsed, 3)}
                    evaluate = bool(self.data.validation) and (
                        step % self.eval_every == 0 or step == self.total_steps)
                    if evaluate:
                        val = self._validation_loss(model, self.data.validation)
                        entry["validation_loss"] = val
                        if best_loss is None or val < best_loss:
                            best_loss, best_step, best = val, step, self._lora_state()
                            since_best = 0
                        else:
                            since_best += 1
                    history.append(entry)
                    rate = examples_done / elapsed if elapsed > 0 else None
                    left = (self.total_steps - step) * elapsed / (step - first_step)
                    self._update(step=step, epoch=epoch + 1, examples_per_s=rate,
                                 elapsed_s=wall_before + elapsed, eta_s=left,
                                 train_losses=[*self.state.train_losses, (step, loss)],
                                 validation_losses=[*self.state.validation_losses,
                                                    (step, entry["validation_loss"])]
                                 if evaluate else self.state.validation_losses,
                                 best_step=best_step, best_validation_loss=best_loss)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.3f}", **(
                            {"val": f"{entry['validation_loss']:.3f}"} if evaluate else {}))
                    if evaluate or step % self.options.checkpoint_every == 0:
                        self._save_checkpoint(model, optimizer, scheduler, step, history, best,
                                              best_step, best_loss, wall_before + elapsed)
                    if evaluate and self.options.patience and since_best >= self.options.patience:
                        status = "early_stopped"
                        break
            wall = wall_before + time.perf_counter() - started
            if status == "interrupted":
                self._save_checkpoint(model, optimizer, scheduler, step, history, best,
                                      best_step, best_loss, wall)
                self._update(status="interrupted",
                             message=f"Interrupted at step {step}; resume with resume=True.")
                print(f"Fine-tune '{self.name}' interrupted at step {step} of "
                      f"{self.total_steps}; resume it with --resume (resume=True).",
                      file=sys.stderr)
                raise KeyboardInterrupt
            if step == 0:
                self._update(status="stopped", message="Stopped before the first step: no "
                                                       "adapter was written.")
                raise FinetuneError(f"The fine-tune '{self.name}' was stopped before its first "
                                    "step, so there is nothing to save.",
                                    "Start it again and let it run at least one step.")
            if status == "stopped":  # a later resume=True can carry on from here
                self._save_checkpoint(model, optimizer, scheduler, step, history, best,
                                      best_step, best_loss, wall)
            if best is not None:
                self._set_lora_state(best)
            result = self._write_adapter(model, status, step, history, best_step, best_loss,
                                         wall, examples_done)
            self.result = result
            self._update(status=status, message=str(result))
            if status != "stopped":  # nothing left to resume
                shutil.rmtree(self.workdir, ignore_errors=True)
            return result
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self._update(status="failed", message=getattr(exc, "message", None) or str(exc))
            if not (self.workdir / CHECKPOINT_FILE).is_file():
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        finally:
            if bar is not None:
                bar.close()
            self._model = None  # the weights are not needed once the adapter is written

    # -- internals ------------------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.state, key, value)
            snapshot = TrainingState(**self.state.to_dict())
        try:
            atomic_progress(self.workdir, snapshot)
        except OSError:
            pass
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:  # a broken display must not stop the training
                pass

    def _load(self):
        if self._model is not None:
            return self._model, self._tokenizer
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from workbench.llm import local

        local.quiet_transformers()
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        folder = local.build_cache()
        torch.manual_seed(self.options.seed)
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        base.config.use_cache = False
        o = self.options
        config = LoraConfig(r=o.rank, lora_alpha=o.alpha, lora_dropout=o.dropout,
                            target_modules=list(o.target_modules), task_type="CAUSAL_LM",
                            bias="none")
        self._model = get_peft_model(base, config)
        self._tokenizer = local.load_tokenizer()
        return self._model, self._tokenizer

    def _optimizer(self, model):
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.options.learning_rate,
                                 weight_decay=self.options.weight_decay)

    def _scheduler(self, optimizer):
        import torch

        warmup, total = self.options.warmup_steps, max(1, self.total_steps)

        def factor(step: int) -> float:  # linear warm-up, then linear decay to zero
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _order(self, epoch: int) -> list[int]:
        import numpy as np

        rng = np.random.default_rng(self.options.seed * 1_000_003 + epoch)
        return rng.permutation(len(self.data.train)).tolist()

    def _batches_of_step(self, step: int) -> list[list[Example]]:
        """The micro-batches of optimizer step ``step`` (0-based): fixed by the seed, so a
        resumed training sees exactly the batches it would have seen."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = self._order(epoch)
        bs, acc = self.options.batch_size, self.options.gradient_accumulation
        out = []
        for b in range(within * acc, min((within + 1) * acc, self.batches_per_epoch)):
            out.append([self.data.train[i] for i in order[b * bs:(b + 1) * bs]])
        return out

    def _examples_in_step(self, step: int) -> int:
        return sum(len(b) for b in self._batches_of_step(step))

    def _collate(self, batch: list[Example]):
        """Right-padded ids and mask, and where the answer tokens are: the (row, position)
        pairs whose next-token prediction is an answer token, and those tokens."""
        import torch

        pad = self._tokenizer.pad_token_id
        width = max(e.length for e in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, positions, targets = [], [], []
        for i, e in enumerate(batch):
            seq = list(e.prompt_ids) + list(e.completion_ids)
            ids[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = 1
            start = len(e.prompt_ids)
            rows += [i] * len(e.completion_ids)
            positions += range(start - 1, start - 1 + len(e.completion_ids))
            targets += e.completion_ids
        return ids, mask, (torch.tensor(rows), torch.tensor(positions), torch.tensor(targets))

    def _answer_loss(self, model, batch: list[Example], reduction: str = "mean"):
        """Cross-entropy on the answer tokens only. The vocabulary projection (49k columns) runs
        on those few positions instead of on every token of the prompt: the same loss as
        ``model(..., labels=...)`` with the prompt masked, for a fraction of the work (LoRA never
        touches the output layer, so it can be applied by hand)."""
        import torch

        ids, mask, (rows, positions, targets) = self._collate(batch)
        causal_lm = model.get_base_model()
        hidden = causal_lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = causal_lm.lm_head(hidden[rows, positions])
        return torch.nn.functional.cross_entropy(logits.float(), targets, reduction=reduction), \
            len(targets)

    def _autocast(self):
        import contextlib

        import torch

        if self.compute_dtype == "bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _micro_step(self, model, batch: list[Example], parts: int) -> float:
        model.train()
        with self._autocast():
            loss, _ = self._answer_loss(model, batch)
        (loss / parts).backward()
        return float(loss.detach())

    def _optimizer_step(self, model, optimizer, scheduler, step: int) -> float:
        import torch

        batches = self._batches_of_step(step)
        losses = [self._micro_step(model, b, len(batches)) for b in batches]
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                       self.options.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return sum(losses) / len(losses)

    def _validation_loss(self, model, examples: list[Example]) -> float:
        """Mean loss per answer token over the validation examples."""
        import torch

        model.eval()
        total, tokens = 0.0, 0
        # Without gradients a bigger batch costs little memory and runs faster per example;
        # similar lengths together waste less padding.
        examples = sorted(examples, key=lambda e: e.length)
        bs = max(self.options.batch_size, VALIDATION_BATCH)
        with torch.no_grad():
            for start in range(0, len(examples), bs):
                with self._autocast():
                    loss, n = self._answer_loss(model, examples[start:start + bs],
                                                reduction="sum")
                total += float(loss)
                tokens += n
        model.train()
        return total / max(1, tokens)

    def _lora_state(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self._model).items()}

    def _set_lora_state(self, state: dict[str, Any]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self._model, state)

    # -- checkpoints ----------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"data": self.data.fingerprint(), "options": self.options.model_dump(mode="json"),
                "source": self.data.source()}

    def _save_checkpoint(self, model, optimizer, scheduler, step: int, history: list, best,
                         best_step, best_loss, wall: float) -> None:
        import torch

        self.workdir.mkdir(parents=True, exist_ok=True)
        body = {"identity": self._identity(), "step": step, "history": history,
                "best": best, "best_step": best_step, "best_loss": best_loss, "wall_s": wall,
                "adapter": self._lora_state(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()}
        fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=".checkpoint.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(body, tmp)
            os.replace(tmp, self.workdir / CHECKPOINT_FILE)  # a kill leaves the old one whole
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._update(checkpoint_step=step)

    def _peek_step(self) -> int | str:
        try:
            progress = json.loads((self.workdir / PROGRESS_FILE).read_text())
            return progress.get("step", "?")
        except (OSError, ValueError):
            return "?"

    def _read_checkpoint(self) -> dict[str, Any]:
        import torch

        path = self.workdir / CHECKPOINT_FILE
        if not path.is_file():
            raise FinetuneError(f"There is no interrupted training of '{self.name}' to resume "
                                f"({path} is missing).",
                                "Start it without resume=True (without --resume).")
        try:
            body = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as exc:
            raise FinetuneError(f"The checkpoint of '{self.name}' cannot be read ({exc}).",
                                f"Delete {self.workdir} and start over.") from None
        identity = self._identity()
        if body.get("identity", {}).get("data") != identity["data"]:
            raise FinetuneError(f"The checkpoint of '{self.name}' was made with other training "
                                "data (other prompt, dataset, slice or rendering).",
                                "Resume with the same prompt, dataset and limit, or delete "
                                f"{self.workdir} and start over.")
        if body["identity"].get("options") != identity["options"]:
            changed = sorted(k for k, v in identity["options"].items()
                             if body["identity"]["options"].get(k) != v)
            raise FinetuneError(f"The checkpoint of '{self.name}' was made with other options "
                                f"({', '.join(changed)}).",
                                "Resume with the same options, or delete "
                                f"{self.workdir} and start over.")
        return body

    def _restore(self, model, optimizer, scheduler, body: dict[str, Any]):
        import torch

        self._set_lora_state(body["adapter"])
        optimizer.load_state_dict(body["optimizer"])
        scheduler.load_state_dict(body["scheduler"])
        torch.set_rng_state(body["torch_rng"])
        return (body["step"], list(body["history"]), body.get("best"), body.get("best_step"),
                body.get("best_loss"), float(body.get("wall_s") or 0.0))

    # -- the adapter ----------------------------------------------------------------------------
    def _write_adapter(self, model, status: str, step: int, history: list, best_step,
                       best_loss, wall: float, examples_done: int) -> TrainingResult:
        from workbench.fsutil import atomic_write_text, publish_dir, staged_dir

        with staged_dir(self.target, f".staging-{self.name}-") as staging:
            for config in model.peft_config.values():
                config.base_model_name_or_path = BASE_MODEL_ID
            # save_embedding_layers=False: PEFT would otherwise look the base model up online
            model.save_pretrained(staging, save_embedding_layers=False)
            files = {p.name: _sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
            record = AdapterRecord(
                base_model=BASE_MODEL_ID, base_model_sha256=base_model_sha256(),
                prompt=self.data.prompt, prompt_version=self.data.prompt_version,
                dataset=self.data.dataset, dataset_version=self.data.dataset_version,
                data_fingerprint=self.data.fingerprint(), train_examples=len(self.data.train),
                validation_examples=len(self.data.validation),
                options={**self.options.model_dump(mode="json"), "limit": self.data.limit,
                         "compute_dtype": self.compute_dtype},
                status=status, steps=step, total_steps=self.total_steps, best_step=best_step,
                best_validation_loss=best_loss, losses=history, wall_time_s=round(wall, 3),
                peak_memory_mb=peak_memory_mb(),
                examples_per_s=round(examples_done / wall, 3) if wall else None, files=files)
            atomic_write_text(staging / RECORD_FILE,
                              json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
            publish_dir(staging, self.target, replace=True)
        self.project.records.save(self.name, record)
        return TrainingResult(self.name, status, self.target, record, self.model_id)


def saved_identity(project: Project, name: str) -> dict[str, Any]:
    """What an interrupted training of ``name`` was started with: ``options`` and ``source``
    (prompt, dataset, limit, ...), so a resume can be asked for with the name alone."""
    import torch

    path = training_dir(project, name) / CHECKPOINT_FILE
    if not path.is_file():
        raise FinetuneError(f"There is no interrupted training of '{name}' to resume "
                            f"({path} is missing).", "Start it without --resume.")
    try:
        body = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:
        raise FinetuneError(f"The checkpoint of '{name}' cannot be read ({exc}).",
                            f"Delete {path.parent} and start over.") from None
    return body.get("identity") or {}


def atomic_progress(workdir: Path, state: TrainingState) -> None:
    """``progress.json`` beside the checkpoint: what a second process (or a person) can read
    while the training runs."""
    from workbench.fsutil import atomic_write_text

    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(workdir / PROGRESS_FILE, json.dumps(state.to_dict()) + "\n")
