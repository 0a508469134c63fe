"""What a run will cost before it starts: its items rendered and their tokens counted (litellm's
counter for hosted models, the bundled tokenizer for the local one, words for fakes), priced
from litellm's price map, against the card's limit (``constraints.run_cost_limit_usd``, else a
share of the monthly budget). ``workbench.runs`` refuses a run above it until ``confirm=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

DEFAULT_RUN_COST_LIMIT_USD = 1.00  # when the card sets neither a run limit nor a budget
BUDGET_SHARE = 0.10  # one run may spend this share of the monthly budget without asking
ESTIMATE_SAMPLE = 200  # items rendered and counted for an estimate (the rest is scaled)
DEFAULT_COMPLETION_TOKENS = 256  # when neither the expected outputs nor max_tokens tell


class CostNotConfirmed(WorkbenchError):
    """The estimated cost is above the card's limit and the run was not confirmed."""

    def __init__(self, estimate: CostEstimate):
        self.estimate = estimate
        super().__init__(
            f"This run would cost about {usd(estimate.total_usd)} ({estimate.items} items × "
            f"~{estimate.est_prompt_tokens + estimate.est_completion_tokens:,.0f} tokens on "
            f"{estimate.model}), above the limit of {usd(estimate.limit_usd)}"
            f"{' (its price is unknown)' if not estimate.price_known else ''}.",
            "Pass confirm=True to run it anyway, use limit=N for fewer items, or raise "
            "constraints.run_cost_limit_usd in the project card.")


def usd(value: float) -> str:
    """Dollars as people read them: $1,234.50, $0.0031, "an unknown amount" for NaN."""
    if value != value:
        return "an unknown amount"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.2g}"


@dataclass(frozen=True)
class CostEstimate:
    """Tokens and dollars a run is expected to use, and whether it needs a confirm."""

    items: int
    est_prompt_tokens: float  # per item
    est_completion_tokens: float  # per item
    usd_per_item: float
    total_usd: float
    limit_usd: float
    needs_confirm: bool
    model: str = ""
    price_known: bool = True
    tokens_from: str = ""  # how tokens were counted

    def __str__(self) -> str:
        verdict = "needs confirm=True" if self.needs_confirm else "within the limit"
        return (f"{self.items} items × ~{self.est_prompt_tokens:,.0f} prompt + "
                f"~{self.est_completion_tokens:,.0f} completion tokens on {self.model}: about "
                f"{usd(self.total_usd)} (limit {usd(self.limit_usd)}, {verdict})")


def run_cost_limit(project: Project) -> float:
    """The most one run may cost without ``confirm=True``: the card's
    ``constraints.run_cost_limit_usd``, else 10% of ``monthly_budget_usd``, else $1."""
    constraints = project.card().get("constraints", {}) or {}
    limit = constraints.get("run_cost_limit_usd")
    if limit is not None:
        return float(limit)
    budget = constraints.get("monthly_budget_usd")
    if budget is not None:
        return float(budget) * BUDGET_SHARE
    return DEFAULT_RUN_COST_LIMIT_USD


def _render(prompt: Any, item: dict[str, Any], train: Any) -> list[dict[str, Any]]:
    """The messages an item will send, without calling the model. Few-shot examples "similar"
    to each item are estimated with the same number of random ones (no embedding model)."""
    from workbench import prompts

    shot = getattr(prompt, "few_shot", None)
    if getattr(shot, "mode", None) == "similar":
        prompt = prompt.model_copy(update={"few_shot": shot.model_copy(update={"mode": "random"})})
    try:
        examples = prompts.select_examples(prompt, item, train)
    except WorkbenchError:
        examples = []
    try:
        return prompts.render(prompt, item, examples=examples)
    except WorkbenchError:  # a template error is reported per item by the run itself
        return [{"role": "user", "content": f"{getattr(prompt, 'system', '')} "
                                            f"{getattr(prompt, 'template', '')} "
                                            f"{item.get('input', '')}"}]


def _token_counter(model: str) -> tuple[Callable[[list[dict[str, Any]] | str], int], str]:
    """A function counting the tokens of messages (or a text) for ``model``, and its name."""
    from workbench.llm.gateway import provider_of

    provider = provider_of(model)
    if provider == "fake":
        from workbench.llm.fake import count_tokens

        def count_fake(x):
            if isinstance(x, str):
                return count_tokens(x)
            return sum(count_tokens(str(m.get("content", ""))) for m in x)

        return count_fake, "words (fake model)"
    if provider == "local":
        from workbench.llm import local

        if local.is_cached():
            tok = local.tokenizer()

            def count_local(x):
                if isinstance(x, str):
                    return tok.count(x)
                return len(local.encode_prompt(tok, x))

            return count_local, "bundled tokenizer"

        def count_chars(x):  # weights not converted yet: ~4 characters a token
            text = x if isinstance(x, str) else " ".join(str(m.get("content", "")) for m in x)
            return max(1, len(text) // 4)

        return count_chars, "characters / 4"
    from workbench.llm.hosted import litellm

    lib = litellm()

    def count_hosted(x):
        if isinstance(x, str):
            return lib.token_counter(model=model, text=x)
        return lib.token_counter(model=model, messages=x)

    return count_hosted, "litellm token_counter"


def price_per_token(model: str) -> tuple[float, float, bool]:
    """USD per prompt token and per completion token, and whether the price is known.
    The bundled model and other on-machine models are free; fake models cost what they were
    registered with (``register_fake(..., input_cost_per_token=...)``, $0 by default)."""
    from workbench.llm.backends import ON_MACHINE_PROVIDERS
    from workbench.llm.gateway import provider_of
    from workbench.llm.hosted import litellm

    provider = provider_of(model)
    if provider == "fake":
        from workbench.llm.fake import price

        return (*price(model), True)
    if provider in ON_MACHINE_PROVIDERS:
        return 0.0, 0.0, True
    try:
        info = litellm().get_model_info(model)
    except Exception:
        return float("nan"), float("nan"), False
    cin, cout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if cin is None or cout is None:
        return float("nan"), float("nan"), False
    return float(cin), float(cout), True


def _sample(rows: Sequence[Any], n: int) -> list[Any]:
    if len(rows) <= n:
        return list(rows)
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def estimate_cost(project: Project, prompt: Any, items: pd.DataFrame | Sequence[dict[str, Any]],
                  model: str | None = None, *, train: Any = None) -> CostEstimate:
    """Estimate a run's tokens and cost before it starts; no model is called.

    Prompt tokens come from the rendered messages; completion tokens from the expected outputs
    (plus a little for formatting), capped by ``max_tokens``, else ``max_tokens`` itself."""
    from workbench.llm.gateway import default_model

    prompt = getattr(prompt, "value", prompt)  # a Stored[PromptVersion] works too
    model = model or getattr(prompt, "model", None) or default_model(project)
    rows = items.to_dict("records") if hasattr(items, "to_dict") else list(items)
    limit = run_cost_limit(project)
    if not rows:
        return CostEstimate(0, 0.0, 0.0, 0.0, 0.0, limit, False, model)
    count, how = _token_counter(model)
    sample = _sample(rows, ESTIMATE_SAMPLE)
    prompt_tokens = sum(count(_render(prompt, row, train)) for row in sample) / len(sample)
    params = getattr(prompt, "params", None) or {}
    max_tokens = params.get("max_tokens") if isinstance(params, dict) else None
    expected = [str(r.get("expected")) for r in sample
                if r.get("expected") is not None and r.get("expected") == r.get("expected")
                and str(r.get("expected")).strip()]
    if expected:
        completion_tokens = sum(count(e) for e in expected) / len(expected) + 2
        if max_tokens:
            completion_tokens = min(completion_tokens, float(max_tokens))
    else:
        completion_tokens = float(max_tokens or DEFAULT_COMPLETION_TOKENS)
    cin, cout, known = price_per_token(model)
    per_item = prompt_tokens * cin + completion_tokens * cout
    total = per_item * len(rows)
    needs = (not known) or total > limit
    return CostEstimate(items=len(rows), est_prompt_tokens=prompt_tokens,
                        est_completion_tokens=completion_tokens, usd_per_item=per_item,
                        total_usd=total, limit_usd=limit, needs_confirm=needs, model=model,
                        price_known=known, tokens_from=how)


# -- the Run handle ------------------------------------------------------------------------------
