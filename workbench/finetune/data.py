"""Training examples from a dataset version and a prompt version, rendered exactly as the gateway
renders them at inference.

Each example is the prompt part (the prompt version rendered for the item, few-shot examples
included, in the bundled model's own chat template) and the answer part (the item's expected
value written the way the prompt's parser reads it, then the end-of-turn token). The loss is
taken on the answer tokens only. ``check_parity`` re-renders every example through the gateway's
own route and compares token by token: an adapter trained on one rendering and asked another at
inference learns the wrong thing silently, so any drift stops training.

Only the train split trains and only the validation split is scored for early stopping; the test
split is never read here.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.finetune.options import (
    ADVISED_EXAMPLES,
    MIN_EXAMPLES,
    FinetuneError,
    TemplateDrift,
    TrainOptions,
)

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

TRAINING_SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Example:
    """One training example: the prompt the gateway sends and the answer to learn."""

    item_id: str
    split: str  # "train" or "validation"
    messages: tuple[dict[str, str], ...]  # the prompt part, as chat messages
    completion: str  # the answer text (without the end-of-turn token)
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]  # the answer's tokens, ending with end-of-turn
    truncated: bool = False

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)

    def chat(self) -> list[dict[str, str]]:
        """The whole conversation, the answer as the assistant's turn (for exports)."""
        return [*map(dict, self.messages), {"role": "assistant", "content": self.completion}]


@dataclass
class TrainingData:
    """Examples for one prompt version on one dataset version, and how they were chosen."""

    prompt: str
    prompt_version: int
    dataset: str
    dataset_version: int
    train: list[Example]
    validation: list[Example]
    limit: int | None = None
    seed: int = 0
    max_length: int = 0
    train_available: int = 0  # rows in the train split before the limit
    dropped_too_long: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def examples(self) -> list[Example]:
        return [*self.train, *self.validation]

    def fingerprint(self) -> str:
        """A hash of every token the model will see, and of which split it is in."""
        digest = hashlib.sha256()
        for ex in self.examples:
            digest.update(json.dumps([ex.split, ex.item_id, ex.prompt_ids, ex.completion_ids],
                                     separators=(",", ":")).encode())
        return digest.hexdigest()

    def source(self) -> dict[str, Any]:
        """What the data was made from, enough to make it again."""
        return {"prompt": self.prompt, "prompt_version": self.prompt_version,
                "dataset": self.dataset, "dataset_version": self.dataset_version,
                "limit": self.limit, "seed": self.seed, "max_length": self.max_length}

    def summary(self) -> dict[str, Any]:
        lengths = [ex.length for ex in self.examples]
        return {
            "prompt": f"{self.prompt} v{self.prompt_version}",
            "dataset": f"{self.dataset} v{self.dataset_version}",
            "train examples": len(self.train),
            "train rows available": self.train_available,
            "validation examples": len(self.validation),
            "longest (tokens)": max(lengths) if lengths else 0,
            "median (tokens)": sorted(lengths)[len(lengths) // 2] if lengths else 0,
            "answer tokens (mean)": round(sum(len(e.completion_ids) for e in self.examples)
                                          / max(1, len(self.examples)), 1),
            "dropped as too long": len(self.dropped_too_long),
            "truncated": len(self.truncated),
        }

    def preview(self, n: int = 2) -> list[dict[str, str]]:
        """The first ``n`` train examples as the model reads them: the prompt text in the chat
        template and the answer it learns."""
        from workbench.llm import local

        tok = local.load_tokenizer()
        return [{"id": ex.item_id, "prompt": tok.decode(list(ex.prompt_ids)),
                 "answer": tok.decode(list(ex.completion_ids))} for ex in self.train[:n]]

    def lengths_figure(self):
        """A plotly histogram of example lengths in tokens, train and validation, with the
        maximum length marked."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for split in TRAINING_SPLITS:
            values = [ex.length for ex in self.examples if ex.split == split]
            if values:
                fig.add_trace(go.Histogram(x=values, name=split, opacity=0.75, nbinsx=30))
        if self.max_length:
            fig.add_vline(x=self.max_length, line_dash="dash", line_color="firebrick",
                          annotation_text=f"max_length {self.max_length}")
        fig.update_layout(barmode="overlay", title="Tokens per example (prompt + answer)",
                          xaxis_title="tokens", yaxis_title="examples", height=320,
                          margin=dict(l=40, r=20, t=50, b=40))
        return fig


# -- building ------------------------------------------------------------------------------------

def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _balanced(rows: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """``n`` rows drawn round-robin across expected values after a seeded shuffle, so a small
    slice keeps every label; all rows (shuffled the same way) when ``n`` is None."""
    rng = random.Random(seed)
    rows = sorted(rows, key=lambda r: str(r["id"]))
    rng.shuffle(rows)
    if n is None or n >= len(rows):
        return rows
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps(row.get("expected"), default=str, sort_keys=True),
                          []).append(row)
    picked: list[dict[str, Any]] = []
    queues = list(groups.values())
    while len(picked) < n:
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    return picked


def _pool_without(train: pd.DataFrame, item_id: str) -> pd.DataFrame:
    return train[train["id"].astype(str) != item_id]


def _render_item(prompt: Any, item: dict[str, Any], train: pd.DataFrame, split: str
                 ) -> list[dict[str, str]]:
    """The messages the gateway gets for ``item`` (few-shot examples from the train split; a
    train item never sees itself as an example)."""
    from workbench.prompts import render, select_examples

    pool = _pool_without(train, item["id"]) if split == "train" else train
    examples = select_examples(prompt, item, pool)
    return render(prompt, item, examples=examples)


def _answer(prompt: Any, item: dict[str, Any]) -> str:
    from workbench.prompts.rendering import example_answer

    return example_answer(prompt, item)


def _split_conversation(tok: Any, messages: list[dict[str, str]], answer: str
                        ) -> tuple[list[int], list[int]]:
    """Token ids of the prompt part and of the answer part, from the chat template applied to
    the whole conversation (as a trainer sees it). The answer ends with the end-of-turn token;
    what the template adds after it (a newline) is never generated, so it is not learnt."""
    whole = tok.apply_chat_template([*messages, {"role": "assistant", "content": answer}],
                                    tokenize=False)
    prompt_text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not whole.startswith(prompt_text):
        raise TemplateDrift("The model's chat template writes the conversation differently from "
                            "the prompt it sends at inference, so the answer cannot be split off.",
                            "Use the bundled model's own tokenizer (rebuild the model cache).")
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = tok(whole[len(prompt_text):], add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    if eos in answer_ids:
        answer_ids = answer_ids[:answer_ids.index(eos) + 1]
    else:
        answer_ids = [*answer_ids, eos]
    return prompt_ids, answer_ids


def build_training_data(project: Project, prompt: str, dataset: str | None = None, *,
                        prompt_version: int | str | None = None,
                        dataset_version: int | str | None = None, limit: int | None = None,
                        options: TrainOptions | None = None, seed: int | None = None,
                        progress: Any = None) -> TrainingData:
    """Instruction–answer pairs for ``prompt`` (latest version, or ``prompt_version``) from the
    train split of ``dataset`` (the latest split version by default), plus validation examples
    for early stopping. ``limit`` takes a label-balanced slice of the train split.

    Refuses, before anything is trained or written: a dataset that is not split, a prompt that
    runs a tool loop, rows without an expected answer, fewer than a handful of examples, and
    examples longer than ``options.max_length`` (unless ``options.too_long`` says to drop or
    truncate them)."""
    from workbench.data.splitting import load_split
    from workbench.data.versioning import find_split, get_version
    from workbench.llm import local
    from workbench.prompts import load_prompt

    options = options or TrainOptions()
    seed = options.seed if seed is None else seed
    if limit is not None and limit < 1:
        raise FinetuneError(f"limit must be at least 1 example (got {limit}).",
                            "Pass a positive number, or no limit for the whole train split.")
    stored_prompt = load_prompt(project, prompt, prompt_version)
    pv = stored_prompt.value
    if pv.technique == "react":
        raise FinetuneError(f"Prompt '{prompt}' v{stored_prompt.version} runs a tool-use loop "
                            "(ReAct); its answers are several turns, not one completion.",
                            "Fine-tune a prompt that answers in one turn (zero-shot, few-shot, "
                            "chain-of-thought or structured).")
    if dataset is None:
        found = find_split(project)
        if found is None:
            raise FinetuneError("No dataset in this project has been split into train, "
                                "validation and test.", "Split one in phase 2 first.")
        dataset = found.name
    stored_data = get_version(project, dataset, dataset_version)
    if not stored_data.value.splits:
        raise FinetuneError(f"{dataset} v{stored_data.version} has not been split, so there is "
                            "no train split to learn from.",
                            f"Split it in phase 2: workbench.data.split(project, {dataset!r}).")
    train_df = load_split(project, dataset, "train", version=stored_data.version)
    val_df = load_split(project, dataset, "validation", version=stored_data.version)
    train_df = train_df.assign(id=train_df["id"].astype(str))
    val_df = val_df.assign(id=val_df["id"].astype(str))

    unlabelled = [str(r["id"]) for df in (train_df, val_df) for r in df.to_dict("records")
                  if _missing(r.get("expected"))]
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else "")
        raise FinetuneError(f"{len(unlabelled)} train/validation row(s) of {dataset} "
                            f"v{stored_data.version} have no expected answer ({shown}); a model "
                            "cannot learn an answer nobody wrote.",
                            "Label them in phase 2 (the annotator or Label Studio) or drop them, "
                            "then build the training data again.")

    train_rows = _balanced(train_df.to_dict("records"), limit, seed)
    val_rows = _balanced(val_df.to_dict("records"), options.validation_examples, seed)
    if len(train_rows) < MIN_EXAMPLES:
        raise FinetuneError(f"Only {len(train_rows)} training example(s): fewer than "
                            f"{MIN_EXAMPLES} cannot teach a model anything, and its validation "
                            "loss would be noise.",
                            f"Use more of the train split (the guide's advice: "
                            f"{ADVISED_EXAMPLES}-100 examples at least, 500+ ideally).")

    tok = local.load_tokenizer()
    built: dict[str, list[Example]] = {"train": [], "validation": []}
    too_long: list[tuple[str, int]] = []
    dropped, truncated = [], []
    todo = [("train", r) for r in train_rows] + [("validation", r) for r in val_rows]
    for done, (split, row) in enumerate(todo, 1):
        messages = _render_item(pv, row, train_df, split)
        answer = _answer(pv, row)
        prompt_ids, answer_ids = _split_conversation(tok, messages, answer)
        length = len(prompt_ids) + len(answer_ids)
        example = Example(row["id"], split, tuple(messages), answer, tuple(prompt_ids),
                          tuple(answer_ids))
        if length > options.max_length:
            if options.too_long == "refuse":
                too_long.append((row["id"], length))
                continue
            if options.too_long == "drop" or len(prompt_ids) >= options.max_length:
                dropped.append(row["id"])  # truncating would leave no answer to learn
                continue
            keep = options.max_length - len(prompt_ids)
            example = Example(row["id"], split, tuple(messages), answer, tuple(prompt_ids),
                              tuple(answer_ids[:keep]), truncated=True)
            truncated.append(row["id"])
        built[split].append(example)
        if progress is not None:
            progress(done, len(todo))
    if too_long:
        longest = max(n for _, n in too_long)
        raise FinetuneError(f"{len(too_long)} of {len(todo)} examples are longer than "
                            f"max_length={options.max_length} tokens (the longest is {longest}).",
                            f"Raise max_length to {longest}, or set too_long='drop' to leave "
                            "them out or too_long='truncate' to cut them at max_length.")
    if len(built["train"]) < MIN_EXAMPLES:
        raise FinetuneError(f"Only {len(built['train'])} training examples are left after "
                            f"dropping {len(dropped)} that were too long.",
                            "Raise max_length or use more of the train split.")
    warnings = []
    if len(built["train"]) < ADVISED_EXAMPLES:
        warnings.append(f"{len(built['train'])} training examples is a small set: the guide "
                        f"advises {ADVISED_EXAMPLES}-100 at least and 500+ ideally. Expect the "
                        "validation loss to rise early (overfitting).")
    if not built["validation"]:
        warnings.append("No validation examples: early stopping and the best checkpoint need "
                        "them, so the last step is kept.")
    return TrainingData(prompt=prompt, prompt_version=stored_prompt.version, dataset=dataset,
                        dataset_version=stored_data.version, train=built["train"],
                        validation=built["validation"], limit=limit, seed=seed,
                        max_length=options.max_length, train_available=len(train_df),
                        dropped_too_long=dropped, truncated=truncated, warnings=warnings)


# -- parity with the gateway ---------------------------------------------------------------------

@dataclass(frozen=True)
class ParityReport:
    checked: int
    prompt: str
    prompt_version: int

    def __str__(self) -> str:
        return (f"All {self.checked} examples match, token for token, what the gateway sends for "
                f"'{self.prompt}' v{self.prompt_version}.")


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_parity(project: Project, data: TrainingData, *, prompt: str | None = None,
                 version: int | str | None = None) -> ParityReport:
    """Check, token by token, that each example's prompt part is what the gateway sends the
    bundled model for the same item with ``prompt`` (default: the prompt the data was built
    from, at its latest version — what a deployment of that prompt would use).

    The gateway's route is taken on purpose: ``gateway.prepare`` (which may add a system
    message) and the bundled model's ``encode_prompt``, not the builder's own rendering. Raises
    ``TemplateDrift`` naming the first example and token that differ."""
    from workbench.data.splitting import load_split
    from workbench.llm import local
    from workbench.llm.gateway import BUNDLED_MODEL
    from workbench.llm.gateway import prepare as prepare_call
    from workbench.prompts import load_prompt

    name = prompt or data.prompt
    stored = load_prompt(project, name, version)
    pv = stored.value
    tok = local.load_tokenizer()
    splits = {split: load_split(project, data.dataset, split, version=data.dataset_version)
              .assign(id=lambda d: d["id"].astype(str)) for split in TRAINING_SPLITS}
    train_df = splits["train"]
    rows = {r["id"]: r for df in splits.values() for r in df.to_dict("records")}
    params = {k: v for k, v in (pv.params or {}).items()
              if k in ("system",)}  # the only parameter that changes the messages
    for ex in data.examples:
        row = rows.get(ex.item_id)
        if row is None:
            raise TemplateDrift(f"Example {ex.item_id} is not in {data.dataset} "
                                f"v{data.dataset_version} any more.",
                                "Build the training data again from the dataset version.")
        messages = _render_item(pv, row, train_df, ex.split)
        call = prepare_call(messages, BUNDLED_MODEL, project=project, cache=False, **params)
        sent = local.encode_prompt(tok, call.messages)
        if list(ex.prompt_ids) != sent:
            at = _first_difference(ex.prompt_ids, sent)
            trained = tok.decode(list(ex.prompt_ids[max(0, at - 8):at + 12]))
            served = tok.decode(sent[max(0, at - 8):at + 12])
            raise TemplateDrift(
                f"The training examples drift from what the gateway sends for '{name}' "
                f"v{stored.version}: example {ex.item_id} differs at token {at} "
                f"(trained on …{trained!r}…, the gateway sends …{served!r}…). An adapter trained "
                "on one rendering and asked another learns the wrong thing.",
                f"Build the training data again from '{name}' v{stored.version} (or train for "
                f"the version the data came from, v{data.prompt_version}).")
    return ParityReport(len(data.examples), name, stored.version)
