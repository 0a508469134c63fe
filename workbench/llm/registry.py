"""Which models can be called here, and why the others cannot (yet)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

from workbench.llm import fake, local

# Hosted models the notebooks suggest. Any other litellm id works too; these are listed so a
# beginner sees what a key would unlock. Prices come from litellm's bundled price map.
SUGGESTED_HOSTED: list[tuple[str, str]] = [
    ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
    ("openai/gpt-4.1-mini", "OPENAI_API_KEY"),
    ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    ("gemini/gemini-2.5-flash", "GEMINI_API_KEY"),
    ("openrouter/meta-llama/llama-3.1-8b-instruct", "OPENROUTER_API_KEY"),
    ("openrouter/openai/gpt-4o-mini", "OPENROUTER_API_KEY"),
]
OLLAMA_SUGGESTED = "ollama/llama3.2"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    kind: str  # bundled | fake | hosted | local-server
    usable: bool
    reason: str
    input_cost_per_1m: float | None = None
    output_cost_per_1m: float | None = None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _prices(model_id: str) -> tuple[float | None, float | None]:
    from workbench.llm.hosted import litellm

    try:
        info = litellm().get_model_info(model_id)
    except Exception:
        return None, None
    cin, cout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    return (round(cin * 1e6, 6) if cin is not None else None,
            round(cout * 1e6, 6) if cout is not None else None)


def _ollama_running(base: str) -> bool:
    url = urlparse(base)
    try:
        with socket.create_connection((url.hostname or "localhost", url.port or 11434),
                                      timeout=0.2):
            return True
    except OSError:
        return False


def _adapters(base_usable: bool) -> list[ModelInfo]:
    """The open project's LoRA adapters (phase 5), each a model id of its own."""
    from workbench.project import active_project

    try:
        project = active_project()
    except Exception:
        return []
    folder = project.adapters_dir if project is not None else None
    if folder is None or not folder.is_dir():
        return []
    return [ModelInfo(f"{local.MODEL_ID}:{path.name}", "bundled", base_usable,
                      f"LoRA adapter '{path.name}' of the bundled model, from this project",
                      0.0, 0.0)
            for path in sorted(folder.iterdir())
            if not path.name.startswith(".") and (path / "adapter_config.json").is_file()]


def models(*, prices: bool = True) -> list[ModelInfo]:
    """Every model the workbench knows of, usable or not, with the reason."""
    from workbench.llm.gateway import hosted_allowed

    out: list[ModelInfo] = []
    try:
        local.weights_file()
        engine = local.engine_name()
        cached = local.is_cached() and (engine != "ctranslate2"
                                        or (local.engine_dir() / "model.bin").is_file())
        out.append(ModelInfo(local.MODEL_ID, "bundled", True,
                             f"bundled SmolLM2-135M-Instruct, runs on this CPU ({engine})"
                             + ("" if cached else " (converted on first use, ~20 s)"), 0.0, 0.0))
    except Exception as exc:
        out.append(ModelInfo(local.MODEL_ID, "bundled", False, str(exc)))
    out += _adapters(out[-1].usable)
    for model_id in fake.registered_fakes():
        out.append(ModelInfo(model_id, "fake", True, "scripted fake model for tests and demos",
                             0.0, 0.0))
    allowed = hosted_allowed()
    for model_id, env in SUGGESTED_HOSTED:
        cin, cout = _prices(model_id) if prices else (None, None)
        if not allowed:
            usable, reason = False, "hosted calls are switched off (WORKBENCH_ALLOW_HOSTED=0)"
        elif os.environ.get(env):
            usable, reason = True, f"{env} is set"
        else:
            usable, reason = False, f"set {env} to use it"
        out.append(ModelInfo(model_id, "hosted", usable, reason, cin, cout))
    base = os.environ.get("OLLAMA_API_BASE", "http://localhost:11434")
    running = _ollama_running(base)
    out.append(ModelInfo(OLLAMA_SUGGESTED, "local-server", running,
                         f"Ollama answers at {base}" if running else
                         f"start an Ollama server at {base} (or set OLLAMA_API_BASE)", 0.0, 0.0))
    return out
