"""From a prompt version and one item to chat messages, with few-shot examples chosen safely."""

from __future__ import annotations

import json
import math
import random
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.prompts.templates import HIDDEN_VARIABLES, render_text, variables_used
from workbench.prompts.versions import PromptError, PromptVersion

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_INSTRUCTION = ("Reply with one JSON object and nothing else (no prose, no code fence). "
                      "It must match this JSON schema:\n{schema}")


class FewShotLeak(PromptError):
    """Few-shot examples would come from rows the prompt is evaluated on."""


def _plain(item: Any) -> dict[str, Any]:
    if hasattr(item, "to_dict") and not isinstance(item, Mapping):
        item = item.to_dict()  # a pandas row
    return dict(item)


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # a missing metadata value renders as nothing, not as "nan"
    return value


def template_variables(prompt: PromptVersion, item: Mapping[str, Any],
                       examples: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What a template can use: the item's values (``input`` and metadata, never ``expected``),
    plus ``labels``, ``examples`` and ``schema`` (the output schema as JSON) when set."""
    variables = {k: _clean(v) for k, v in _plain(item).items() if k not in HIDDEN_VARIABLES}
    variables.setdefault("labels", list(prompt.labels or []))
    variables.setdefault("examples", [_plain(e) for e in examples])
    if prompt.output_schema is not None:
        variables.setdefault("schema", json.dumps(prompt.output_schema, indent=2))
    return variables


def example_answer(prompt: PromptVersion, example: Mapping[str, Any]) -> str:
    """The assistant turn of a few-shot example."""
    expected = example.get("expected")
    answer = json.dumps(expected, ensure_ascii=False) if isinstance(expected, (dict, list)) \
        else str(_clean(expected))
    if prompt.technique == "chain_of_thought":
        reasoning = str(_clean(example.get("reasoning", ""))).strip()
        return f"{reasoning}\nAnswer: {answer}" if reasoning else f"Answer: {answer}"
    return answer


def render(prompt: PromptVersion, item: Mapping[str, Any], *,
           examples: Sequence[Mapping[str, Any]] = ()) -> list[dict]:
    """Chat messages for one item: the system prompt, the few-shot examples as user/assistant
    turns, then the item's user message.

    A template that uses ``{{ examples }}`` itself gets the examples as a variable instead of as
    turns. With an output schema, the system message ends with the schema and a request for JSON
    (unless a template already uses ``{{ schema }}``). With few-shot mode ``fixed`` and no
    ``examples`` given, the prompt's own examples are used."""
    if not examples and prompt.few_shot.mode == "fixed":
        examples = prompt.few_shot.examples
    variables = template_variables(prompt, item, examples)
    used = variables_used(prompt.system) | variables_used(prompt.template)
    system = render_text(prompt.system, variables, part="system prompt") if prompt.system else ""
    if prompt.output_schema is not None and "schema" not in used:
        instruction = SCHEMA_INSTRUCTION.format(schema=variables["schema"])
        system = f"{system.rstrip()}\n\n{instruction}" if system.strip() else instruction
    messages: list[dict] = []
    if system.strip():
        messages.append({"role": "system", "content": system})
    if "examples" not in used:
        for n, example in enumerate(examples, 1):
            shown = template_variables(prompt, example)
            messages.append({"role": "user", "content": render_text(
                prompt.template, shown, part=f"template (few-shot example {n})")})
            messages.append({"role": "assistant", "content": example_answer(prompt, example)})
    messages.append({"role": "user", "content": render_text(prompt.template, variables)})
    return messages


# -- choosing examples ---------------------------------------------------------------------------

def _key(text: Any) -> str:
    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def check_train_rows(train: pd.DataFrame, item: Mapping[str, Any] | None = None) -> None:
    """Raise ``FewShotLeak`` unless every row is a train row and the item is not among them."""
    if "split" not in train.columns:
        raise FewShotLeak("The few-shot pool has no 'split' column, so nothing proves its rows "
                          "are training rows.",
                          "Pass load_split(project, dataset, 'train').")
    wrong = train.loc[train["split"] != "train", "split"]
    if len(wrong):
        counts = ", ".join(f"{n} {s}" for s, n in wrong.astype(str).value_counts().items())
        raise FewShotLeak(f"The few-shot pool holds {len(wrong)} row(s) that are not from the "
                          f"train split ({counts}); examples taken from them would leak the "
                          "evaluation set into the prompt.",
                          "Pass load_split(project, dataset, 'train') as the pool.")
    if item is not None and item.get("id") is not None and "id" in train.columns \
            and (train["id"].astype(str) == str(item["id"])).any():
        raise FewShotLeak(f"The item being answered (id {item['id']!r}) is itself in the few-shot "
                          "pool, so its answer could be shown to the model.",
                          "Evaluate on the validation or test split, and take examples from train.")


def _candidates(train: pd.DataFrame, item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Train rows as example dicts (without ``split``), in a stable order, minus any row whose
    input is the item's own (a playground input typed to match a training row)."""
    rows = train.drop(columns=["split"]).to_dict("records")
    if rows and "id" in rows[0]:
        rows.sort(key=lambda r: str(r["id"]))
    own = _key(item.get("input", ""))
    return [r for r in rows if _key(r.get("input", "")) != own]


def select_examples(prompt: PromptVersion, item: Mapping[str, Any],
                    train: pd.DataFrame | None) -> list[dict]:
    """The few-shot examples for ``item``: the prompt's fixed ones, ``k`` random train rows
    (the same for every item, for a given seed), or the ``k`` train rows most similar to the item
    (bundled embeddings; the most similar last, nearest the question).

    ``train`` must hold only train-split rows and not the item itself: anything else raises
    ``FewShotLeak``, because examples from the evaluation split inflate every score."""
    shot = prompt.few_shot
    if shot.mode == "none":
        return []
    if shot.mode == "fixed":
        return [dict(e) for e in shot.examples]
    if train is None:
        raise PromptError(f"Few-shot mode '{shot.mode}' picks examples from the train split, "
                          "but no train rows were given.",
                          "Pass train=load_split(project, dataset, 'train').")
    item = _plain(item)
    check_train_rows(train, item)
    pool = _candidates(train, item)
    if not pool:
        return []
    k = min(shot.k, len(pool))
    if shot.mode == "random":
        picked = random.Random(shot.seed).sample(range(len(pool)), k)
        return [pool[i] for i in picked]
    import numpy as np

    from workbench.llm.embeddings import embed

    vectors = _pool_vectors(pool)
    query = embed(str(item.get("input", "")))
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [pool[i] for i in reversed(order.tolist())]


_vector_cache: OrderedDict[str, Any] = OrderedDict()  # one input text -> its embedding
_VECTOR_CACHE_MAX = 50_000
_vector_lock = threading.Lock()


def _pool_vectors(pool: list[dict[str, Any]]):
    """Embeddings of the pool's inputs. Each text is embedded once per process: a run asks for
    every item from a thread pool, and fine-tuning data asks with pools that differ by one row
    (a train item is never its own example)."""
    import numpy as np

    from workbench.llm.embeddings import embed

    texts = [str(r.get("input", "")) for r in pool]
    with _vector_lock:
        todo = list(dict.fromkeys(t for t in texts if t not in _vector_cache))
        if todo:
            for text, vector in zip(todo, embed(todo), strict=True):
                _vector_cache[text] = vector
        for text in texts:
            _vector_cache.move_to_end(text)
        vectors = np.stack([_vector_cache[t] for t in texts])
        while len(_vector_cache) > max(_VECTOR_CACHE_MAX, len(texts)):
            _vector_cache.popitem(last=False)
    return vectors
