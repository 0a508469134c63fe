"""The model gateway: call any model — bundled, fake or hosted — the same way.

    >>> from workbench import llm
    >>> llm.complete("What is the capital of France?").text
    'The capital of France is Paris.'

Heavy libraries (litellm, torch, transformers) load on the first call, not at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.llm.local import MODEL_ID as BUNDLED_MODEL

if TYPE_CHECKING:
    from workbench.llm.embeddings import embed
    from workbench.llm.fake import register_fake
    from workbench.llm.gateway import acomplete, complete, complete_many, stream
    from workbench.llm.registry import ModelInfo, models

_EXPORTS = {
    "complete": "workbench.llm.gateway",
    "acomplete": "workbench.llm.gateway",
    "complete_many": "workbench.llm.gateway",
    "stream": "workbench.llm.gateway",
    "models": "workbench.llm.registry",
    "ModelInfo": "workbench.llm.registry",
    "embed": "workbench.llm.embeddings",
    "register_fake": "workbench.llm.fake",
}

__all__ = ["BUNDLED_MODEL", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.llm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
