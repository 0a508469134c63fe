"""Phase 5: training data rendered as the gateway renders it, LoRA training of the real bundled
model on a few examples, Stop, resume after a kill, exports, import and merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import workbench
from workbench import sample
from workbench.finetune import (
    AdapterMismatch,
    FineTune,
    FinetuneError,
    TemplateDrift,
    before_after,
    build_training_data,
    check_parity,
    export_axolotl,
    export_openai,
    import_adapter,
    list_adapters,
    make_options,
    merge_adapter,
    prompting_verdict,
    record_decision,
    validate_openai_jsonl,
)
from workbench.finetune.trainer import CHECKPOINT_FILE, PROGRESS_FILE, training_dir

WORKBENCH = str(Path(sys.executable).parent / "workbench")
# Small and quick: a few steps of four examples, a validation after every step.
QUICK = dict(epochs=2, learning_rate=2e-3, eval_every=1, validation_examples=8,
             checkpoint_every=1)


# -- options: no model needed ----------------------------------------------------------------------

def test_options_that_cannot_work_are_refused_in_one_sentence_each():
    with pytest.raises(FinetuneError) as err:
        make_options(rank=0, learning_rate=-1.0, dropout=1.0)
    text = err.value.one_line()
    assert "rank must be a whole number of at least 1" in text
    assert "learning_rate must be above 0" in text and "dropout must be at least 0" in text
    with pytest.raises(FinetuneError, match="target_modules must be some of"):
        make_options(target_modules=["lm_head"])
    assert make_options(target_modules="q_proj, k_proj").target_modules == ("q_proj", "k_proj")
    assert make_options().rank == 8


# -- data and parity -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("finetune") / "p"
    proj = workbench.init_project(path, sample=True, activate=False)
    sample.fill_prerequisites(proj, 5)
    return proj


pytestmark = pytest.mark.model


def test_training_data_is_what_the_gateway_sends_and_never_the_test_split(project):
    from workbench.data.splitting import load_split
    from workbench.llm import local

    data = build_training_data(project, "triage", limit=24)
    assert len(data.train) == 24 and data.validation
    test_ids = set(load_split(project, data.dataset, "test")["id"].astype(str))
    assert not test_ids & {ex.item_id for ex in data.examples}
    tok = local.load_tokenizer()
    first = data.train[0]
    assert tok.decode(list(first.prompt_ids)).endswith("<|im_start|>assistant\n")
    assert first.completion_ids[-1] == tok.eos_token_id
    assert tok.decode(list(first.completion_ids[:-1])) == first.completion
    labels = {ex.completion for ex in data.train}
    assert len(labels) == 5  # the slice keeps every label
    report = check_parity(project, data)
    assert report.checked == len(data.examples)


def test_parity_check_catches_a_drifted_template_and_nothing_is_trained(project):
    from workbench.prompts import load_prompt, save_prompt

    data = build_training_data(project, "triage", limit=8)
    original = load_prompt(project, "triage")
    drifted = original.value.model_copy(update={"system": original.value.system + " Be brief."})
    save_prompt(project, "triage", drifted)
    try:
        with pytest.raises(TemplateDrift) as err:
            check_parity(project, data)
        assert f"v{original.version + 1}" in err.value.message and "differs at token" in \
            err.value.message
        with pytest.raises(TemplateDrift):
            FineTune(project, data, "drifted")
        assert not (project.adapters_dir / "drifted").exists()
        # The data built from the old version still matches that version.
        check_parity(project, data, version=original.version)
    finally:
        # Back to the original rendering as the newest version (not merely found again).
        save_prompt(project, "triage", original.value, reuse="latest")


def test_bad_input_is_refused_before_any_training(project):
    with pytest.raises(FinetuneError, match="fewer than 8 cannot teach"):
        build_training_data(project, "triage", limit=3)
    with pytest.raises(FinetuneError) as err:
        build_training_data(project, "triage", limit=16, options=make_options(max_length=60))
    assert "longer than max_length=60" in err.value.message and "too_long='drop'" in \
        err.value.fix
    lengths = sorted(ex.length for ex in build_training_data(project, "triage",
                                                             limit=32).examples)
    cap = lengths[-4]  # a few examples are longer than this
    data = build_training_data(project, "triage", limit=32,
                               options=make_options(max_length=cap, too_long="drop"))
    assert data.dropped_too_long and all(ex.length <= cap for ex in data.examples)
    with pytest.raises(FinetuneError, match="cannot name an adapter"):
        FineTune(project, data, "bad name:1")


def test_rows_without_an_answer_are_refused(tmp_path):
    import pandas as pd

    from workbench.data import import_data, split

    proj = workbench.init_project(tmp_path / "p", sample=True, activate=False)
    rows = [{"id": f"r{i}", "input": f"message number {i} about topic {i % 3}",
             "expected": ["a", "b", "c"][i % 3] if i % 7 else None} for i in range(60)]
    import_data(proj, pd.DataFrame(rows), name="tiny", input="input", expected="expected",
                id="id")
    split(proj, "tiny")
    sample.save_sample_prompt(proj)
    with pytest.raises(FinetuneError, match="have no expected answer"):
        build_training_data(proj, "triage", "tiny")


# -- training --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(project):
    data = build_training_data(project, "triage", limit=16,
                               options=make_options(**QUICK))
    job = FineTune(project, data, "quick", options=make_options(**QUICK))
    estimate = job.estimate()
    result = job.run(progress=False)
    return job, result, estimate


def test_training_lowers_the_loss_and_writes_a_standard_adapter(project, trained):
    job, result, estimate = trained
    assert estimate.seconds_per_step > 0 and estimate.total_steps == job.total_steps == 8
    record = result.record
    assert result.status == "finished" and record.steps == 8
    losses = [entry["train_loss"] for entry in record.losses]
    assert losses[-1] < losses[0]
    val = [entry["validation_loss"] for entry in record.losses]
    assert min(val) < val[0] and record.best_validation_loss == min(val)
    folder = project.adapters_dir / "quick"
    assert {"adapter_config.json", "adapter_model.safetensors", "training.json"} <= \
        {p.name for p in folder.iterdir()}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["base_model_name_or_path"].endswith("SmolLM2-135M-Instruct")
    saved = json.loads((folder / "training.json").read_text())
    assert saved["prompt"] == "triage" and saved["dataset_version"] == job.data.dataset_version
    assert saved["base_model_sha256"] and saved["peak_memory_mb"] > 0
    assert not training_dir(project, "quick").exists()  # nothing left to resume
    assert list_adapters(project)["adapter"].tolist() == ["quick"]


def test_the_adapter_is_served_by_the_gateway_and_changes_its_answers(project, trained):
    from workbench import llm

    job, result, _ = trained
    messages = [dict(m) for m in job.data.validation[0].messages]
    base = llm.complete(messages, project=project, max_tokens=12, cache=False)
    tuned = llm.complete(messages, model=result.model_id, project=project, max_tokens=12,
                         cache=False)
    assert base.text != tuned.text
    # Pickers list it beside the bundled model while its project is open.
    workbench.open_project(project.path)
    assert result.model_id in [m.id for m in llm.models(prices=False) if m.usable]


def test_before_after_compares_on_the_same_test_items_and_logs_the_decision(project, trained):
    _, result, _ = trained
    compared = before_after(project, "triage", "quick", limit=4)
    assert list(compared.before.items["item_id"]) == list(compared.after.items["item_id"])
    assert compared.after.model == "local/smollm2-135m:quick"
    assert "accuracy" in set(compared.table["metric"])
    assert compared.comparison.n == 4
    entry = record_decision(project, compared)
    assert project.card()["decisions"][-1]["phase"] == 5
    assert "quick" in entry.decision
    verdict = prompting_verdict(project, "triage")
    assert verdict.run_id == compared.before.run_id  # adapter runs are not "prompting"
    assert verdict.should_finetune in (True, False)


def test_stop_keeps_the_best_checkpoint(project):
    import torch
    from safetensors.torch import load_file

    options = make_options(**{**QUICK, "epochs": 3})
    data = build_training_data(project, "triage", limit=16, options=options)
    job = FineTune(project, data, "stopped", options=options)

    def stop_after_three_validations(state):
        if len(state.validation_losses) >= 3 and state.status == "training":
            job.stop()

    job.on_update(stop_after_three_validations)
    result = job.run(progress=False)
    assert result.status == "stopped" and result.record.steps < job.total_steps
    record = result.record
    assert record.best_validation_loss == min(e["validation_loss"] for e in record.losses)
    checkpoint = torch.load(training_dir(project, "stopped") / CHECKPOINT_FILE,
                            weights_only=False)
    saved = load_file(project.adapters_dir / "stopped" / "adapter_model.safetensors")
    best = checkpoint["best"]
    assert saved.keys() == best.keys()
    for key, tensor in saved.items():
        assert torch.equal(tensor, best[key]), key
    # A stopped training can carry on later; starting over must be asked for.
    with pytest.raises(FinetuneError, match="can be resumed"):
        FineTune(project, data, "stopped", options=options)
    fresh = FineTune(project, data, "stopped", options=options, overwrite=True)
    assert fresh.discards_checkpoint == record.steps
    assert (training_dir(project, "stopped") / CHECKPOINT_FILE).is_file()  # not yet
    again = FineTune(project, data, "stopped", options=options, resume=True)
    assert again.run(progress=False).record.steps == job.total_steps


def test_a_killed_training_resumes_from_its_last_checkpoint(project, tmp_path):
    env = dict(os.environ, WORKBENCH_PROJECT=str(project.path))
    args = [WORKBENCH, "finetune", "triage", "--name", "killed", "--limit", "16",
            "--epochs", "3", "--lr", "2e-3"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    progress = training_dir(project, "killed") / PROGRESS_FILE
    deadline = time.monotonic() + 300
    seen = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen = json.loads(progress.read_text())
        except (OSError, ValueError):
            seen = None
        if seen and (seen.get("checkpoint_step") or 0) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (project.adapters_dir / "killed").exists()  # nothing half-written
    kept = {step: loss for step, loss in seen["train_losses"] if step <= seen["checkpoint_step"]}

    done = subprocess.run([*args[:3], "--name", "killed", "--resume"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((project.adapters_dir / "killed" / "training.json").read_text())
    steps = [e["step"] for e in record["losses"]]
    assert steps == list(range(1, record["total_steps"] + 1))  # each step once, none repeated
    for entry in record["losses"]:  # the steps before the kill were kept, not trained again
        if entry["step"] in kept:
            assert entry["train_loss"] == pytest.approx(kept[entry["step"]])
    assert record["options"]["limit"] == 16


# -- exports, import, merge ------------------------------------------------------------------------

def test_openai_export_passes_the_format_check_and_the_check_can_fail(project, tmp_path):
    data = build_training_data(project, "triage", limit=16)
    files = export_openai(data, tmp_path / "openai")
    assert validate_openai_jsonl(files["train"]) == []
    line = json.loads(files["train"].read_text().splitlines()[0])
    assert [m["role"] for m in line["messages"]] == ["system", "user", "assistant"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([
        json.dumps({"messages": [{"role": "bot", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": 3}]}),
    ]) + "\n")
    problems = validate_openai_jsonl(bad)
    assert any("line 1" in p and "role must be one of" in p for p in problems)
    assert any("line 2" in p and "no assistant message" in p for p in problems)
    assert any("line 3" in p and "not JSON" in p for p in problems)
    assert any("line 4" in p and "content must be a string" in p for p in problems)
    assert any("at least 10" in p for p in problems)


def test_axolotl_config_carries_the_same_options(project, tmp_path):
    import yaml

    options = make_options(rank=16, alpha=32, learning_rate=5e-4, epochs=2)
    data = build_training_data(project, "triage", limit=16, options=options)
    files = export_axolotl(data, options, tmp_path / "axolotl")
    config = yaml.safe_load(files["config"].read_text())
    assert config["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (config["adapter"], config["lora_r"], config["lora_alpha"]) == ("lora", 16, 32)
    assert config["learning_rate"] == 5e-4 and config["num_epochs"] == 2
    assert config["lora_target_modules"] == ["q_proj", "v_proj"]
    assert config["chat_template"] == "tokenizer_default"
    assert config["datasets"][0]["roles_to_train"] == ["assistant"]
    assert (tmp_path / "axolotl" / config["datasets"][0]["path"]).is_file()


def test_import_checks_the_base_model_and_merge_writes_a_standalone_model(project, trained,
                                                                           tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM

    source = tmp_path / "elsewhere"
    shutil.copytree(project.adapters_dir / "quick", source)
    config = json.loads((source / "adapter_config.json").read_text())
    foreign = tmp_path / "foreign"
    shutil.copytree(source, foreign)
    (foreign / "adapter_config.json").write_text(json.dumps(
        {**config, "base_model_name_or_path": "meta-llama/Llama-3.1-8B"}))
    with pytest.raises(AdapterMismatch, match="not on the bundled model"):
        import_adapter(project, foreign, "foreign")
    assert not (project.adapters_dir / "foreign").exists()
    stored = import_adapter(project, source, "from-gpu")
    assert stored.value.source == "imported"
    assert (project.adapters_dir / "from-gpu" / "adapter_model.safetensors").is_file()

    merged = merge_adapter(project, "from-gpu", tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert model.config.model_type == "llama"
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_cli_reports_bad_input_in_one_line_and_exports(project, tmp_path):
    env = dict(os.environ, WORKBENCH_PROJECT=str(project.path))
    bad = subprocess.run([WORKBENCH, "finetune", "triage", "--rank", "0"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "rank must be a whole number" in bad.stderr
    out = subprocess.run([WORKBENCH, "finetune", "triage", "--limit", "16", "--export",
                          "openai", "--out", str(tmp_path / "x")], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert validate_openai_jsonl(tmp_path / "x" / "train.jsonl") == []
