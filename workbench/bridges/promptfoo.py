"""Promptfoo in and out.

**In** (``import_promptfoo``): a ``promptfooconfig.yaml`` becomes

- one prompt version per prompt (a text template, or a chat list of one system and one user
  message; ``file://`` prompts are read beside the config). Promptfoo's templates are Nunjucks,
  which reads simple ``{{ var }}`` templates as Jinja does; the test variable that carries the
  text becomes the workbench's ``input`` (``{{ question }}`` is rewritten ``{{ input }}``);
- a dataset (one row per test, after promptfoo's expansion of list-valued variables): ``id``
  ``t001``..., ``input``, the other variables as metadata, ``expected`` from an ``equals``
  assertion;
- the ``assertions`` scorer (``workbench.evaluate.assertions``) holding each test's checks
  (``equals``, ``contains``, ``icontains``, ``regex``, ``is-json``, their ``-any``/``-all`` and
  ``not-`` forms, ``starts-with``) and ``defaultTest``'s;
- providers mapped to gateway model ids (``openai:chat:gpt-4o-mini`` -> ``openai/gpt-4o-mini``;
  ``anthropic:messages:``, ``ollama:chat:``, ``openrouter:`` likewise; ``models={...}`` maps any
  id, e.g. to the bundled model for an offline try; ``parse_models`` reads ``ID=MODEL`` text);
- a ``PromptfooSuite`` record tying them together, with every assertion the workbench cannot
  score (``llm-rubric``, ``javascript``, ``similar``, ...) listed in ``unsupported``: kept and
  shown, never dropped silently. ``run_suite`` runs every prompt on every model.

Everything is read and checked before anything is saved: an unknown provider, a prompt that does
not compile or a test without the input variable raises ``BridgeError`` and saves nothing.

**Out** (``export_promptfoo``): a run (an evaluation) becomes a promptfoo config whose provider
is the served deployment's OpenAI-compatible endpoint (``openai:chat:<deployment>`` with
``apiBaseUrl`` ``<url>/v1``; the key is read from an environment variable, never written in the
file) and whose tests are the run's items with its scorers as assertions: ``promptfoo eval -c
FILE`` then checks the deployed service the way the run checked the model. Scorers promptfoo
has no equivalent for are listed in the file's ``description`` and the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.bridges import BridgeError, exports_dir
from workbench.records import Record

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.runs import Run

# promptfoo provider prefixes -> gateway providers (the model name follows the last colon part)
PROVIDER_PREFIXES = {
    "openai:chat:": "openai/", "openai:completion:": "openai/", "openai:": "openai/",
    "anthropic:messages:": "anthropic/", "anthropic:completion:": "anthropic/",
    "anthropic:": "anthropic/", "ollama:chat:": "ollama/", "ollama:completion:": "ollama/",
    "ollama:": "ollama/", "openrouter:": "openrouter/",
}
API_KEY_ENV = "WORKBENCH_API_KEY"


class PromptfooSuite(Record):
    """An imported promptfoo config: where its parts now live in the project."""

    kind: ClassVar[str] = "promptfoo_suite"
    source: str
    source_sha256: str
    description: str = ""
    prompts: list[dict[str, Any]]  # {"name", "version", "label"}
    dataset: str
    dataset_version: int
    models: dict[str, str]  # promptfoo provider id -> gateway model id
    scorers: list[dict[str, Any]]  # scorer specs
    unsupported: list[dict[str, Any]] = []  # {"test", "type", "value"}: not scored here


@dataclass
class PromptfooImport:
    """What ``import_promptfoo`` made."""

    name: str
    prompts: list[Any]  # SavedPrompt
    dataset: Any  # Stored[DatasetVersion]
    models: dict[str, str]
    scorers: list[Any]
    unsupported: list[dict[str, Any]]
    suite_version: int = 0

    @property
    def sentence(self) -> str:
        names = ", ".join(f"{p.name} v{p.version}" for p in self.prompts)
        text = (f"Imported promptfoo suite '{self.name}': prompts {names}; dataset "
                f"{self.dataset.name} v{self.dataset.version} ({self.dataset.value.rows} tests);"
                f" models {', '.join(self.models.values())}.")
        if self.unsupported:
            kinds = sorted({u["type"] for u in self.unsupported})
            text += (f" {len(self.unsupported)} assertion(s) are not scored here "
                     f"({', '.join(kinds)}); they are kept in the suite's 'unsupported' list.")
        return text

    def _repr_markdown_(self) -> str:
        return self.sentence


# -- reading the config --------------------------------------------------------------------------

def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BridgeError(f"{path} cannot be read ({exc}).",
                          "Pass the path of a promptfooconfig.yaml.") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise BridgeError(f"{path.name} is not valid YAML/JSON: {exc}",
                          "Fix the file (promptfoo would refuse it too).") from None


def _file_ref(value: Any, base: Path) -> Any:
    """``file://x.yaml`` -> its content (YAML/JSON parsed, other text as is)."""
    if isinstance(value, str) and value.startswith("file://"):
        path = (base / value[len("file://"):]).expanduser()
        if any(ch in path.name for ch in "*?["):
            raise BridgeError(f"{value}: globs are not read by the import.",
                              "List the files one by one.")
        if not path.is_file():
            raise BridgeError(f"{value} is referenced by the config but {path} does not exist.",
                              "Put the file beside the config or fix the path.")
        if path.suffix in (".yaml", ".yml", ".json"):
            return _read_yaml(path)
        if path.suffix in (".txt", ".md", ".j2", ".njk", ""):
            return path.read_text(encoding="utf-8")
        raise BridgeError(f"{value}: {path.suffix} files are not read by the import (only "
                          "text, YAML and JSON).",
                          "Inline the prompts or tests, or save them as .txt/.yaml/.json.")
    return value


def map_provider(provider_id: str, models: dict[str, str] | None = None) -> str | None:
    """The gateway model id for a promptfoo provider id, or None when it is not known."""
    if models and provider_id in models:
        return models[provider_id]
    for prefix, gateway in PROVIDER_PREFIXES.items():
        if provider_id.startswith(prefix) and len(provider_id) > len(prefix):
            return gateway + provider_id[len(prefix):]
    return None


_MODEL_ID = re.compile(r"\s*[A-Za-z0-9_.-]+/\S")  # what a workbench model id starts with


def _split_pair(piece: str) -> tuple[str, str, str]:
    for at, char in enumerate(piece):
        if char == "=" and _MODEL_ID.match(piece, at + 1):
            return piece[:at].strip(), "=", piece[at + 1:].strip()
    key, sep, value = piece.rpartition("=")
    return key.strip(), sep, value.strip()


def parse_models(pairs: str | Iterable[str]) -> dict[str, str]:
    """The ``models`` of ``import_promptfoo`` from mappings written ``PROVIDER_ID=MODEL``:
    comma-separated text (``"bedrock:claude=local/smollm2-135m, my-api=fake/echo"``, a notebook
    field) or one per item (``workbench promptfoo import --model`` given again). Spaces around
    each side go; empty pieces are skipped. Either side may hold a ``=`` (a provider id with a
    query, a fake model's options such as ``fake/echo:fail=500``): the split is at the first
    ``=`` followed by a workbench model id (``provider/name``), else at the last one. A piece
    that is not a pair raises ``BridgeError`` naming it, rather than being dropped, since the
    import would then stop on an unmapped provider with less to go on."""
    pieces = pairs.split(",") if isinstance(pairs, str) else pairs
    out: dict[str, str] = {}
    for piece in pieces:
        if not piece.strip():
            continue
        key, sep, value = _split_pair(piece)
        if not sep or not key or not value:
            raise BridgeError(f"The provider mapping {piece.strip()!r} is not PROVIDER_ID=MODEL.",
                              "Write it as e.g. bedrock:claude=local/smollm2-135m.")
        out[key] = value
    return out


def _providers(config: dict[str, Any], models: dict[str, str] | None) -> dict[str, str]:
    raw = config.get("providers", config.get("targets"))
    if raw is None:
        raise BridgeError("The config has no providers.",
                          "Add e.g. providers: [openai:gpt-4o-mini], or pass models={...}.")
    entries = raw if isinstance(raw, list) else [raw]
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            pid, label = entry, None
        elif isinstance(entry, dict) and "id" in entry:
            pid, label = str(entry["id"]), entry.get("label")
        elif isinstance(entry, dict) and len(entry) == 1:  # {"openai:gpt-4o": {...}}
            pid, label = str(next(iter(entry))), None
        else:
            raise BridgeError(f"A provider entry is not understood: {entry!r}.",
                              "Write providers as ids or {id: ..., config: ...}.")
        gateway = (map_provider(label, models) if label and models and label in models
                   else map_provider(pid, models))
        if gateway is None:
            unknown.append(pid)
        else:
            mapping[pid] = gateway
    if unknown:
        raise BridgeError(
            f"The config names provider(s) the workbench cannot map to a model: "
            f"{', '.join(unknown)}. Nothing was imported.",
            "Map each to a gateway model id, e.g. models={" + ", ".join(
                f"{u!r}: 'local/smollm2-135m'" for u in unknown[:2]) +
            "} (`--model ID=MODEL` on the command line); openai:, anthropic:, ollama: and "
            "openrouter: ids are mapped by themselves.")
    from workbench.llm.gateway import _check_model_id

    for pid, gateway in mapping.items():
        try:
            _check_model_id(gateway)
        except Exception as exc:
            raise BridgeError(f"Provider {pid} maps to {gateway!r}, which the gateway does not "
                              f"know: {exc}", "Map it to a model `workbench models` lists.") \
                from None
    return mapping


def _prompt_parts(raw: Any, base: Path, index: int) -> tuple[str, str, str]:
    """(label, system, template) of one promptfoo prompt."""
    label = f"p{index + 1}"
    if isinstance(raw, dict):
        label = str(raw.get("label") or raw.get("id") or label)
        raw = raw.get("raw", raw.get("id"))
    raw = _file_ref(raw, base)
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            try:
                raw = json.loads(stripped)
            except ValueError:
                pass  # a text prompt that happens to start with '['
    if isinstance(raw, str):
        return label, "", raw
    if isinstance(raw, list) and all(isinstance(m, dict) for m in raw):
        system = [str(m.get("content", "")) for m in raw if m.get("role") == "system"]
        user = [str(m.get("content", "")) for m in raw if m.get("role") == "user"]
        others = [m.get("role") for m in raw if m.get("role") not in ("system", "user")]
        if len(user) != 1 or len(system) > 1 or others:
            raise BridgeError(f"Prompt {label} is a chat of {len(raw)} messages; the workbench "
                              "imports one optional system message and one user message.",
                              "Move earlier turns into the system prompt or few-shot examples.")
        return label, system[0] if system else "", user[0]
    raise BridgeError(f"Prompt {label} is not a text or a chat message list: {raw!r:.80}.",
                      "Write prompts as text templates or [{role, content}, ...].")


def _rename_variable(source: str, old: str, new: str) -> str:
    """``old`` -> ``new`` wherever the template reads it as a variable (not as an attribute,
    and not inside quoted strings), using Jinja's own lexer."""
    if old == new:
        return source
    from workbench.prompts.templates import environment

    out, previous = [], None
    for _, kind, value in environment().lex(source):
        if kind == "name" and value == old and previous != ".":
            value = new
        out.append(value)
        if kind != "whitespace":
            previous = value
    text = "".join(out)
    # the lexer drops one trailing newline (keep_trailing_newline=False): put it back
    return text + "\n" if source.endswith("\n") and not text.endswith("\n") else text


def _expand(vars_: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo turns a list-valued variable into one test per value (all combinations)."""
    keys = list(vars_)
    pools = [v if isinstance(v, list) else [v] for v in vars_.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*pools)]


def _render_value(value: Any, vars_: dict[str, Any]) -> Any:
    if isinstance(value, str) and "{{" in value:
        from workbench.prompts.templates import render_text

        return render_text(value, vars_, part="assertion value")
    return value


def _tests(config: dict[str, Any], base: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tests = _file_ref(config.get("tests", []), base)
    if isinstance(tests, dict):
        tests = [tests]
    if not isinstance(tests, list):
        raise BridgeError("tests must be a list of {vars, assert} entries.",
                          "See promptfoo's docs for the tests: section.")
    tests = [_file_ref(t, base) for t in tests]
    flat: list[dict[str, Any]] = []
    for t in tests:
        flat.extend(t if isinstance(t, list) else [t])
    default = config.get("defaultTest") or {}
    default = _file_ref(default, base)
    if not isinstance(default, dict):
        raise BridgeError("defaultTest must be a mapping.", "Write defaultTest: {assert: [...]}")
    return flat, default


def _input_var(tests: list[dict[str, Any]], templates: list[str], wanted: str | None) -> str:
    from workbench.prompts.templates import variables_used

    names = [set(t.get("vars") or {}) for t in tests]
    if wanted:
        missing = [i + 1 for i, n in enumerate(names) if wanted not in n]
        if missing:
            raise BridgeError(f"Test(s) {missing[:5]} have no variable {wanted!r}.",
                              "Give every test that variable, or choose another input_var.")
        return wanted
    common = set.intersection(*names) if names else set()
    used = set().union(*(variables_used(t) for t in templates)) & common
    for candidate in ("input", "query", "question", "text", "message", "prompt"):
        if candidate in used:
            return candidate
    if len(used) == 1:
        return used.pop()
    raise BridgeError(f"Cannot tell which test variable is the input: the prompts read "
                      f"{sorted(used) or 'none of the variables every test has'}.",
                      "Pass input_var='...' (--input-var on the command line).")


def import_promptfoo(project: Project, path: str | os.PathLike, *, name: str | None = None,
                     models: dict[str, str] | None = None,
                     input_var: str | None = None) -> PromptfooImport:
    """Import a promptfoo config as prompt versions, a dataset and the ``assertions`` scorer
    (see the module docstring). ``name`` (default: the config's folder name) names the suite,
    its dataset and (with a suffix per prompt) its prompts."""
    import pandas as pd

    from workbench.data.versioning import check_frame, save_version
    from workbench.evaluate.assertions import assertions, supported
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.prompts.templates import compile_template

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "promptfooconfig.yaml"
    if not path.is_file():
        raise BridgeError(f"{path} does not exist.", "Pass the path of a promptfooconfig.yaml.")
    data = path.read_bytes()
    config = _read_yaml(path)
    if not isinstance(config, dict):
        raise BridgeError(f"{path.name} is not a promptfoo config (a mapping at the top).",
                          "It needs prompts:, providers: and tests:.")
    base = path.parent
    suite = name or re.sub(r"[^\w-]+", "-", path.parent.name.lower()).strip("-") or "promptfoo"
    mapping = _providers(config, models)

    raw_prompts = _file_ref(config.get("prompts"), base)
    if raw_prompts is None:
        raise BridgeError("The config has no prompts.", "Add prompts: ['{{input}}'].")
    raw_prompts = raw_prompts if isinstance(raw_prompts, list) else [raw_prompts]
    parts = [_prompt_parts(p, base, i) for i, p in enumerate(raw_prompts)]
    tests, default = _tests(config, base)
    if not tests:
        raise BridgeError("The config has no tests.", "Add tests with vars and asserts.")
    default_vars = default.get("vars") or {}
    expanded: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for test in tests:
        if not isinstance(test, dict):
            raise BridgeError(f"A test is not a mapping: {test!r:.80}.",
                              "Write each test as {vars: {...}, assert: [...]}.")
        for vars_ in _expand({**default_vars, **(test.get("vars") or {})}):
            expanded.append((test, vars_))
    var = _input_var([{"vars": v} for _, v in expanded], [t for _, _, t in parts], input_var)

    prompts: list[tuple[str, PromptVersion]] = []
    first_model = next(iter(mapping.values()))
    for label, system, template in parts:
        system, template = (_rename_variable(system, var, "input"),
                            _rename_variable(template, var, "input"))
        compile_template(system, f"system prompt of {label}")
        compile_template(template, f"template of {label}")
        prompts.append((label, PromptVersion(system=system, template=template,
                                             model=first_model,
                                             description=f"imported from {path.name}")))

    rows, checks, unsupported = [], {}, []
    every = []
    for entry in default.get("assert") or []:
        if isinstance(entry, dict) and supported(entry.get("type")):
            every.append({"type": entry["type"], "value": entry.get("value")})
        else:
            unsupported.append({"test": "defaultTest", "type": _kind(entry),
                                "value": _plain(entry)})
    for i, (test, vars_) in enumerate(expanded):
        item_id = f"t{i + 1:03d}"
        text = vars_.get(var)
        if not isinstance(text, (str, int, float)) or isinstance(text, bool):
            raise BridgeError(f"Test {i + 1} has no text in variable {var!r}.",
                              "Give every test a text value for the input variable.")
        own, expected = [], None
        for entry in test.get("assert") or []:
            if isinstance(entry, dict) and supported(entry.get("type")):
                value = _render_value(entry.get("value"), vars_)
                own.append({"type": entry["type"], "value": value})
                if entry["type"] == "equals" and expected is None:
                    expected = value if isinstance(value, str) else json.dumps(value)
            else:
                unsupported.append({"test": item_id, "type": _kind(entry),
                                    "value": _plain(entry)})
        if own:
            checks[item_id] = own
        row = {"id": item_id, "input": str(text), "expected": expected}
        for key, value in vars_.items():
            if key != var:
                row[key if key not in ("id", "input", "expected", "split") else f"var_{key}"] = \
                    value if isinstance(value, (str, int, float, bool)) or value is None \
                    else json.dumps(value, ensure_ascii=False)
        if test.get("description"):
            row["description"] = str(test["description"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    check_frame(frame)
    scorer = assertions(checks=checks, every=every)  # checks every pattern before any write

    # Everything is checked: from here on the project changes.
    saved = []
    for label, prompt in prompts:
        slug = re.sub(r"[^\w-]+", "-", label).strip("-")
        prompt_name = suite if len(prompts) == 1 else f"{suite}-{slug}"
        saved.append(save_prompt(project, prompt_name, prompt))
    digest = hashlib.sha256(data).hexdigest()
    from workbench.data.versioning import DatasetError, get_version

    try:
        parent = get_version(project, suite).version
    except DatasetError:
        parent = None
    stored = save_version(project, suite, frame, transform="import", parent=parent, params={
        "source": path.name, "format": "promptfoo", "sha256": digest, "input_var": var,
        "rows": len(frame)})
    record = PromptfooSuite(
        source=path.name, source_sha256=digest, description=str(config.get("description", "")),
        prompts=[{"name": s.name, "version": s.version, "label": label}
                 for s, (label, _) in zip(saved, prompts, strict=True)],
        dataset=stored.name, dataset_version=stored.version, models=mapping,
        scorers=[scorer.spec()], unsupported=unsupported)
    kept = project.records.save(suite, record)
    return PromptfooImport(suite, saved, stored, mapping, [scorer], unsupported, kept.version)


def _kind(entry: Any) -> str:
    return str(entry.get("type", "?")) if isinstance(entry, dict) else type(entry).__name__


def _plain(entry: Any) -> Any:
    return json.loads(json.dumps(entry, default=str))


def load_suite(project: Project, name: str):
    """The stored ``PromptfooSuite`` named ``name``."""
    from workbench.errors import RecordNotFound

    try:
        return project.records.get(PromptfooSuite, name)
    except RecordNotFound:
        known = project.records.names(PromptfooSuite)
        raise BridgeError(f"There is no imported promptfoo suite '{name}'.",
                          f"Known suites: {known or 'none yet'}; import one with "
                          "import_promptfoo(project, 'promptfooconfig.yaml').") from None


def run_suite(project: Project, name: str, *, models: list[str] | None = None,
              limit: int | None = None, progress: bool = False, **options: Any) -> list[Run]:
    """Run every prompt of suite ``name`` on every model it maps (or ``models``) over its
    dataset, scored with its assertions. Returns the runs (prompt-major order)."""
    from workbench.evaluate import scorer_from_spec
    from workbench.runs import start_run

    suite = load_suite(project, name).value
    scorers = [scorer_from_spec(s) for s in suite.scorers]
    runs = []
    for prompt in suite.prompts:
        for model in models or list(dict.fromkeys(suite.models.values())):
            runs.append(start_run(project, prompt["name"], version=prompt["version"],
                                  dataset=suite.dataset, split=None, model=model,
                                  scorers=scorers, limit=limit, progress=progress,
                                  name=f"{prompt['name']} on {model}", **options))
    return runs


# -- out: an evaluation as a promptfoo config ----------------------------------------------------

@dataclass
class PromptfooExport:
    path: Path
    tests: int
    translated: list[str] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)

    @property
    def sentence(self) -> str:
        text = (f"Wrote {self.path} ({self.tests} tests; scorers as assertions: "
                f"{', '.join(self.translated) or 'none'}). Run it with `promptfoo eval -c "
                f"{self.path}` while the deployment is served, with {API_KEY_ENV} set.")
        if self.untranslated:
            text += f" Not translated (no promptfoo equivalent): {', '.join(self.untranslated)}."
        return text

    def _repr_markdown_(self) -> str:
        return self.sentence


def _asserts_for(spec: dict[str, Any], item_id: str, expected: Any) -> list[dict[str, Any]] | None:
    """promptfoo assertions for one scorer on one item; None when it has no equivalent."""
    name, args = spec.get("name"), spec.get("args") or {}
    if name == "assertions":
        own = (args.get("checks") or {}).get(str(item_id), [])
        return [{"type": c["type"], **({"value": c["value"]} if c.get("value") is not None
                                       else {})} for c in [*(args.get("every") or []), *own]]
    if name in ("exact_match", "normalized_match"):
        if expected is None:
            return []
        if name == "exact_match" and args.get("field") == "output":
            return [{"type": "equals", "value": str(expected)}]
        # the service answers the model's text; the label it parses out is named in it
        return [{"type": "icontains", "value": str(expected)}]
    if name == "contains":
        needle = args.get("text") if args.get("text") is not None else expected
        if needle is None:
            return []
        return [{"type": "icontains" if args.get("ignore_case", True) else "contains",
                 "value": str(needle)}]
    if name == "regex" and not args.get("ignore_case"):
        return [{"type": "regex", "value": args["pattern"]}]
    if name == "json_valid":
        return [{"type": "is-json"}]
    if name == "json_schema":
        return [{"type": "is-json", "value": args.get("schema")}]
    if name == "latency_budget":
        return [{"type": "latency", "threshold": int(float(args["max_s"]) * 1000)}]
    return None


def export_promptfoo(project: Project, run_id: str, *, base_url: str,
                     out: str | os.PathLike | None = None, deployment: str | None = None,
                     api_key_env: str = API_KEY_ENV) -> PromptfooExport:
    """Write run ``run_id`` as a promptfoo config against the deployment served at
    ``base_url`` (e.g. ``http://127.0.0.1:8000``) to ``out`` (default
    ``<project>/exports/promptfoo/<run_id>/promptfooconfig.yaml``)."""
    import yaml

    from workbench.data.versioning import load_rows
    from workbench.fsutil import atomic_write_text
    from workbench.prompts import load_prompt
    from workbench.prompts.templates import HIDDEN_VARIABLES, variables_used
    from workbench.runs import load_run

    if not re.match(r"^https?://", base_url or ""):
        raise BridgeError(f"base_url {base_url!r} is not an http(s) URL.",
                          "Pass the served deployment's URL, e.g. http://127.0.0.1:8000.")
    run = load_run(project, run_id)
    prompt = load_prompt(project, run.prompt, run.prompt_version).value
    used = sorted((variables_used(prompt.template) | variables_used(prompt.system))
                  - set(HIDDEN_VARIABLES))
    rows = {str(r["id"]): r for r in load_rows(project, run.dataset, run.dataset_version)}
    items = run.items
    specs = run.config.get("scorers") or []
    translated, untranslated = [], []
    for spec in specs:
        probe = _asserts_for(spec, "", "x")
        (translated if probe is not None else untranslated).append(spec.get("name", "?"))
    tests = []
    for item in items.to_dict("records"):
        row = rows.get(str(item["item_id"]), {})
        vars_ = {v: _json_safe(row.get(v, item.get(v))) for v in used}
        asserts = []
        for spec in specs:
            asserts += _asserts_for(spec, item["item_id"], item.get("expected")) or []
        test = {"description": str(item["item_id"]), "vars": vars_}
        if asserts:
            test["assert"] = asserts
        tests.append(test)
    if used == ["input"]:
        prompt_text = "{{input}}"
    else:  # several variables: the service takes them as a JSON object in the message
        prompt_text = "{" + ", ".join(f'"{v}": {{{{ {v} | dump }}}}' for v in used) + "}"
    url = base_url.rstrip("/")
    url = url if url.endswith("/v1") else url + "/v1"
    deployed = deployment or run.prompt
    config = {
        "description": (f"{project.name}: run {run.run_id} ({run.prompt} v{run.prompt_version} "
                        f"on {run.model}) against the served deployment '{deployed}'"
                        + (f"; not translated: {', '.join(untranslated)}" if untranslated
                           else "")),
        "prompts": [prompt_text],
        "providers": [{"id": f"openai:chat:{deployed}", "label": f"workbench:{deployed}",
                       "config": {"apiBaseUrl": url, "apiKeyEnvar": api_key_env}}],
        "tests": tests,
    }
    target = Path(out).expanduser() if out is not None else \
        exports_dir(project, "promptfoo", run.run_id) / "promptfooconfig.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Exported by the LLMOps Workbench on {dt.date.today().isoformat()}.\n"
              f"# Serve the deployment, set {api_key_env} to one of its keys, then:\n"
              f"#   promptfoo eval -c {target.name}\n")
    atomic_write_text(target, header + yaml.safe_dump(config, sort_keys=False,
                                                      allow_unicode=True, width=100))
    return PromptfooExport(target, len(tests), translated, untranslated)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    return json.loads(json.dumps(value, default=str))


__all__ = ["API_KEY_ENV", "PROVIDER_PREFIXES", "PromptfooExport", "PromptfooImport",
           "PromptfooSuite", "export_promptfoo", "import_promptfoo", "load_suite", "map_provider",
           "parse_models", "run_suite"]
