"""Promptfoo in and out: a promptfooconfig.yaml imported as prompt versions, a dataset and the
per-test ``assertions`` scorer; a run exported as a promptfoo config that the real promptfoo
from npm evaluates against the served deployment's OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workbench.bridges import BridgeError
from workbench.bridges.promptfoo import (
    PromptfooSuite,
    export_promptfoo,
    import_promptfoo,
    load_suite,
    parse_models,
    run_suite,
)

PROMPTFOO = Path(__file__).resolve().parents[1] / "tools" / "promptfoo"
KEY = "wb-test-key-0123456789"

CONFIG = {
    "description": "Refund questions",
    "prompts": [
        "Answer the customer's question in one sentence: {{question}}",
        {"label": "json", "raw": json.dumps([
            {"role": "system", "content": "Reply briefly."},
            {"role": "user", "content": "{{ question }} (about {{ topic }})"}])},
    ],
    "providers": ["openai:chat:gpt-4o-mini", {"id": "ollama:chat:llama3",
                                              "config": {"temperature": 0}}],
    "defaultTest": {"vars": {"topic": "orders"},
                    "assert": [{"type": "not-icontains", "value": "as an AI"}]},
    "tests": [
        {"description": "refund window",
         "vars": {"question": "How long do I have to return an item?", "topic": "returns"},
         "assert": [{"type": "icontains", "value": "30 DAYS"},
                    {"type": "regex", "value": "\\d+ days"}]},
        {"vars": {"question": ["Can I get a refund?", "Do you refund shipping?"]},
         "assert": [{"type": "contains", "value": "refund"},
                    {"type": "llm-rubric", "value": "is polite"}]},
        {"vars": {"question": "Give me my order as JSON"},
         "assert": [{"type": "is-json"}, {"type": "javascript", "value": "output.length < 99"}]},
        {"vars": {"question": "Say OK"}, "assert": [{"type": "equals", "value": "OK"}]},
    ],
}


def reply(messages) -> str:
    text = messages[-1]["content"]
    if "return an item" in text:
        return "You have 30 days to return an item."
    if "refund shipping" in text:
        return "Shipping costs are not returned."  # fails 'contains refund'
    if "refund" in text:
        return "Yes, we refund within 14 days."
    if "JSON" in text:
        return '{"order": 42}'
    return "OK"


@pytest.fixture
def pf_model(fake_model):
    return fake_model("pf", reply)


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_promptfoo_config_comes_in_as_prompts_a_dataset_and_scorers(project, tmp_path,
                                                                      pf_model):
    path = write_config(tmp_path / "refunds", CONFIG)
    made = import_promptfoo(project, path)
    assert made.name == "refunds"
    assert made.models == {"openai:chat:gpt-4o-mini": "openai/gpt-4o-mini",
                           "ollama:chat:llama3": "ollama/llama3"}
    [text, chat] = made.prompts
    assert (text.name, chat.name) == ("refunds-p1", "refunds-json")
    assert text.value.template == "Answer the customer's question in one sentence: {{input}}"
    assert (chat.value.system, chat.value.template) == \
        ("Reply briefly.", "{{ input }} (about {{ topic }})")
    rows = made.dataset.value
    assert rows.rows == 5 and rows.columns == ["id", "input", "expected", "topic", "description"]
    from workbench.data import load

    frame = load(project, "refunds")
    assert list(frame["input"])[1:3] == ["Can I get a refund?", "Do you refund shipping?"]
    assert list(frame["expected"].fillna("-")) == ["-", "-", "-", "-", "OK"]
    assert list(frame["topic"]) == ["returns", "orders", "orders", "orders", "orders"]
    # what cannot be scored here is listed with its test, not dropped
    assert [(u["test"], u["type"]) for u in made.unsupported] == [
        ("t002", "llm-rubric"), ("t003", "llm-rubric"), ("t004", "javascript")]
    assert "3 assertion(s) are not scored here (javascript, llm-rubric)" in made.sentence
    suite = load_suite(project, "refunds").value
    assert suite.unsupported == made.unsupported and suite.dataset_version == 1

    runs = run_suite(project, "refunds", models=[pf_model])
    assert len(runs) == 2
    for run in runs:
        verdicts = dict(zip(run.items["item_id"], run.items["score.assertions"], strict=True))
        assert verdicts == {"t001": 1.0, "t002": 1.0, "t003": 0.5, "t004": 1.0, "t005": 1.0}
        failed = run.items.set_index("item_id").loc["t003", "scores"]["assertions"]
        assert failed["passed"] is False and "fails contains 'refund'" in failed["reason"]


def test_unknown_providers_are_named_and_nothing_is_imported(project, tmp_path):
    config = {**CONFIG, "providers": ["bedrock:anthropic.claude-v2", "openai:gpt-4o-mini",
                                      "file://my_provider.py"]}
    path = write_config(tmp_path / "refunds", config)
    with pytest.raises(BridgeError) as caught:
        import_promptfoo(project, path)
    assert "bedrock:anthropic.claude-v2, file://my_provider.py" in caught.value.message
    assert "models={" in caught.value.fix
    assert project.records.names(PromptfooSuite) == []
    from workbench.data import datasets
    from workbench.prompts import list_prompts

    assert datasets(project) == [] and list_prompts(project) == []

    # a bad regex is also caught before anything is saved
    bad = {**CONFIG, "tests": [{"vars": {"question": "x"},
                                "assert": [{"type": "regex", "value": "(unclosed"}]}]}
    with pytest.raises(Exception):
        import_promptfoo(project, write_config(tmp_path / "bad", bad))
    assert datasets(project) == [] and list_prompts(project) == []

    # mapping them by hand makes the same config importable (here to a fake model)
    made = import_promptfoo(project, path, models={
        "bedrock:anthropic.claude-v2": "fake/echo", "file://my_provider.py": "fake/echo"})
    assert set(made.models.values()) == {"fake/echo", "openai/gpt-4o-mini"}


def test_provider_mappings_are_read_from_a_notebook_field_or_repeated_options():
    text = " bedrock:anthropic.claude-v2 = local/smollm2-135m ,, file://my_provider.py=fake/echo, "
    assert parse_models(text) == {"bedrock:anthropic.claude-v2": "local/smollm2-135m",
                                  "file://my_provider.py": "fake/echo"}
    assert parse_models(["a=fake/echo", "b=c=fake/echo"]) == {"a": "fake/echo",
                                                              "b=c": "fake/echo"}
    # a fake model's options hold "=" too: the split is before the model id
    assert parse_models("x=fake/echo:fail=500:latency=5ms, http://h/?q=1=local/smollm2-135m") \
        == {"x": "fake/echo:fail=500:latency=5ms", "http://h/?q=1": "local/smollm2-135m"}
    assert parse_models("") == {} and parse_models([]) == {}
    for bad in ("bedrock:claude", "=fake/echo", "bedrock:claude="):
        with pytest.raises(BridgeError) as caught:
            parse_models(f"a=fake/echo, {bad}")
        assert caught.value.message == f"The provider mapping {bad!r} is not PROVIDER_ID=MODEL."
        assert "bedrock:claude=local/smollm2-135m" in caught.value.fix


def _promptfoo_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (PROMPTFOO / "node_modules" / ".bin" / "promptfoo").exists():
        return f"promptfoo is not installed: run `npm ci` in {PROMPTFOO} (scripts/setup.sh does)"
    return None


def test_an_evaluation_goes_out_as_a_promptfoo_config_the_real_promptfoo_runs(
        sample_project, tmp_path, pf_model):
    missing = _promptfoo_missing()
    if missing:
        if os.environ.get("WORKBENCH_REQUIRE_PROMPTFOO") == "1":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    from workbench import sample
    from workbench.serve import plan_deployment, start_server

    project = sample_project
    sample.fill_prerequisites(project, 7)
    one_prompt = {**CONFIG, "prompts": CONFIG["prompts"][:1]}
    made = import_promptfoo(project, write_config(tmp_path / "refunds", one_prompt))
    [run] = run_suite(project, "refunds", models=[pf_model])
    plan_deployment(project, "refunds", model=pf_model, force=True, burst=100,
                    rate_limit_per_minute=6000)
    server = start_server(project, api_keys=[KEY])
    try:
        out = tmp_path / "export" / "promptfooconfig.yaml"
        exported = export_promptfoo(project, run.run_id, base_url=server.url, out=out)
        assert exported.tests == 5 and exported.translated == ["assertions"]
        written = yaml.safe_load(out.read_text())
        assert KEY not in out.read_text()  # the key is read from the environment
        assert written["providers"][0]["id"] == "openai:chat:refunds"
        home = tmp_path / "home"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
               "WORKBENCH_API_KEY": KEY, "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"),
               "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
               "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
               "PROMPTFOO_CACHE_ENABLED": "false", "NO_PROXY": "127.0.0.1,localhost"}
        results_file = tmp_path / "results.json"
        done = subprocess.run(
            [str(PROMPTFOO / "node_modules" / ".bin" / "promptfoo"), "eval", "-c", str(out),
             "-o", str(results_file), "--no-cache", "--no-progress-bar", "--no-table",
             "--max-concurrency", "1"],
            cwd=out.parent, env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        server.stop()
    assert results_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(results_file.read_text())["results"]["results"]
    assert len(rows) == 5, done.stdout[-3000:]
    by_test = {r["testCase"]["description"]: r for r in rows}
    assert {k: r["response"]["output"] for k, r in by_test.items()} == \
        dict(zip(run.items["item_id"], run.items["output"], strict=True))
    # promptfoo's verdict on the served answers is the workbench's verdict on the run's
    assert {k: r["success"] for k, r in by_test.items()} == \
        {i: s == 1.0 for i, s in zip(run.items["item_id"], run.items["score.assertions"],
                                     strict=True)}
    assert made.dataset.value.rows == 5
