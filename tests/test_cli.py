"""The `workbench` command, run as a user would: a real subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


def run(*args, project=None, cwd=None):
    env = dict(os.environ)
    env.pop("WORKBENCH_PROJECT", None)
    if project:
        env["WORKBENCH_PROJECT"] = str(project)
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def assert_one_line_error(proc):
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_status_and_json(tmp_path):
    target = tmp_path / "triage"
    made = run("init", str(target), "--sample")
    assert made.returncode == 0 and str(target) in made.stdout
    status = json.loads(run("status", str(target), "--json").stdout)
    assert status["name"] == "Help desk triage"
    assert [p["state"] for p in status["phases"]][:2] == ["done", "todo"]
    text = run("status", project=target)
    assert text.returncode == 0 and "Next: phase 2" in text.stdout
    from_inside = run("status", cwd=target)
    assert from_inside.returncode == 0 and "Help desk triage" in from_inside.stdout


def test_ask_a_fake_model_is_traced(tmp_path):
    target = tmp_path / "p"
    run("init", str(target))
    asked = run("ask", "hello from the cli", "--model", "fake/echo", project=target)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "hello from the cli"
    assert "fake/echo" in asked.stderr and "trace" in asked.stderr
    status = json.loads(run("status", str(target), "--json").stdout)
    assert status["model_calls"] == 1


def test_models_json_lists_usable_and_unusable():
    found = {m["id"]: m for m in json.loads(run("models", "--json").stdout)}
    assert found["fake/echo"]["usable"] and not found["openai/gpt-4o-mini"]["usable"]


@pytest.mark.parametrize("args", [
    ("status", "/definitely/not/here"),
    ("ask", "hi", "--model", "fake/nope"),
    ("ask", "hi", "--model", "openai/gpt-4o-mini"),
])
def test_errors_are_one_clear_line(args, tmp_path):
    assert_one_line_error(run(*args, cwd=tmp_path))


def test_init_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    assert_one_line_error(run("init", str(tmp_path)))
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_status_without_any_project_says_how_to_make_one(tmp_path):
    proc = run("status", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "workbench init" in proc.stderr


def test_usage_errors_exit_2():
    assert run("frobnicate").returncode == 2


@pytest.mark.model
def test_ask_the_bundled_model(tmp_path):
    target = tmp_path / "p"
    run("init", str(target), "--sample")
    asked = run("ask", "What is the capital of France?", project=target)
    assert asked.returncode == 0, asked.stderr
    assert "Paris" in asked.stdout
    status = json.loads(run("status", str(target), "--json").stdout)
    assert status["model_calls"] == 1


@pytest.mark.parametrize("jupyter", [False, True], ids=["marimo", "jupyterlab"])
def test_notebooks_opens_a_server_on_the_project(jupyter, tmp_path):
    import socket
    import time
    import urllib.request

    target = tmp_path / "p"
    run("init", str(target), "--sample")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, WORKBENCH_PROJECT=str(target), HOME=str(tmp_path),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jc"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jr"))
    args = [EXE, "notebooks", "--port", str(port), "--no-browser"] + (["--jupyter"] if jupyter
                                                                      else [])
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"no server answered on port {port}")
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"on project {target}" in out


@pytest.fixture
def gated_project(tmp_path):
    """The sample card (accuracy >= 0.9 among its targets) and a tiny test split on which
    ``fake/echo`` is right with the template ``{{ input }}`` and wrong with ``no idea``."""
    import pandas as pd

    import workbench
    from workbench.data.versioning import save_version
    from workbench.prompts import PromptVersion, save_prompt

    project = workbench.init_project(tmp_path / "gated", sample=True)
    labels = ["billing", "shipping", "account"]
    rows = [{"id": f"t{i}", "input": labels[i % 3], "expected": labels[i % 3], "split": "test"}
            for i in range(24)]
    save_version(project, "tiny", pd.DataFrame(rows), transform="import")
    save_prompt(project, "route", PromptVersion(template="{{ input }}", labels=labels,
                                                model="fake/echo"))
    save_prompt(project, "route", PromptVersion(template="no idea", labels=labels,
                                                model="fake/echo"))
    return project


def test_eval_bless_and_gate_for_ci(gated_project):
    project = gated_project.path
    good = run("eval", "route", "--version", "1", "--dataset", "tiny", "--gate", "--json",
               project=project)
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert result["status"] == "finished" and result["gate"]["passed"] is True
    assert {t["metric"]: t["status"] for t in result["targets"]}["accuracy"] == "pass"
    assert Path(result["report"]).is_file()
    good_id = result["run_id"]

    assert run("bless", good_id, project=project).returncode == 0
    listed = run("runs", project=project)
    assert listed.returncode == 0 and good_id in listed.stdout

    bad = run("eval", "route", "--dataset", "tiny", "--gate", project=project)
    assert bad.returncode == 3, bad.stderr
    assert "gate: FAIL" in bad.stdout
    assert "accuracy misses its target" in bad.stdout
    assert "Significantly worse than the blessed baseline" in bad.stdout
    bad_id = bad.stdout.split()[1].rstrip(":")

    again = run("gate", bad_id, "--json", project=project)
    assert again.returncode == 3 and json.loads(again.stdout)["passed"] is False
    assert run("gate", good_id, project=project).returncode == 0
    untrusted = run("gate", good_id, "--judge", "helpfulness@fake/echo", project=project)
    assert untrusted.returncode == 3 and "is not trusted" in untrusted.stdout


def test_eval_and_gate_errors_are_one_line(gated_project):
    assert_one_line_error(run("gate", "no-such-run", project=gated_project.path))
    assert_one_line_error(run("eval", "nope", "--dataset", "tiny", project=gated_project.path))
    assert_one_line_error(run("bless", "no-such-run", project=gated_project.path))
    assert run("eval", "route", project=gated_project.path).returncode == 2  # --dataset missing


def test_import_a_file_and_its_errors(tmp_path):
    target = tmp_path / "p"
    run("init", str(target))
    latin = tmp_path / "tickets.csv"
    latin.write_bytes("id,text,label,text\n1,Où est ma commande ?,shipping,x\n"
                      "2,Grüße aus München,other,y\n".encode("latin-1"))
    dup = run("import", str(latin), "--dataset", "tickets", "--expected", "label",
              project=target)
    assert_one_line_error(dup)
    assert "2 columns named 'text' (columns 2 and 4)" in dup.stderr

    latin.write_bytes("id,message,label\n1,Où est ma commande ?,shipping\n"
                      "2,Grüße aus München,other\n".encode("latin-1"))
    missing = run("import", str(latin), "--dataset", "tickets", "--expected", "label",
                  project=target)
    assert_one_line_error(missing)
    assert "e.g. workbench import FILE --input message." in missing.stderr

    done = run("import", str(latin), "--dataset", "tickets", "--input", "message", "--expected",
               "label", "--id", "id", project=target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("Imported 2 rows from tickets.csv (csv; encoding cp1252, "
                                   "detected) as version 1 of 'tickets'.")
    import workbench
    from workbench.data import load

    rows = load(workbench.open_project(target), "tickets")
    assert rows["input"].tolist() == ["Où est ma commande ?", "Grüße aus München"]

    array = tmp_path / "rows.jsonl"
    array.write_text('[{"text": "a"}, {"text": "b"}]\n')
    wrong = run("import", str(array), "--dataset", "rows", project=target)
    assert_one_line_error(wrong)
    assert "Import it as a JSON array with --format json" in wrong.stderr
    right = run("import", str(array), "--dataset", "rows", "--format", "json", project=target)
    assert right.returncode == 0 and "Imported 2 rows from rows.jsonl (json;" in right.stdout

    amb = tmp_path / "amb.csv"
    amb.write_bytes(b"text\nTotal 20 \xa4\n")
    unsure = run("import", str(amb), "--dataset", "amb", project=target)
    assert_one_line_error(unsure)
    assert "line 2 reads 'Total 20 ¤' in cp1252" in unsure.stderr
    assert "--encoding cp1252 or --encoding iso-8859-15" in unsure.stderr
    given = run("import", str(amb), "--dataset", "amb", "--encoding", "iso-8859-15",
                project=target)
    assert given.returncode == 0 and "encoding iso-8859-15, as given" in given.stdout


@pytest.mark.parametrize("hint,flags", [
    ("Import it as a JSON array with format='json', or rename the file to .json.",
     "Import it as a JSON array with --format json, or rename the file to .json."),
    ("Map the right ones, e.g. import_data(..., input='ticket text', expected=<one of the "
     "columns>).",
     "Map the right ones, e.g. workbench import FILE --input 'ticket text' --expected <one of "
     "the columns>."),
    ("Map the right ones, e.g. import_data(..., input='message', metadata=[...]).",
     "Map the right ones, e.g. workbench import FILE --input message --metadata COL,COL."),
    ("Pass sep=';' (or save the file as CSV with commas).",
     "Pass --sep ';' (or save the file as CSV with commas)."),
    ("Pass the encoding that shows that line right, e.g. encoding='cp1252' or "
     "encoding='cp1250' (or save the file as UTF-8).",
     "Pass the encoding that shows that line right, e.g. --encoding cp1252 or --encoding cp1250 "
     "(or save the file as UTF-8)."),
    ("Pass encoding= if you know it, or format='parquet' for Parquet.",
     "Pass --encoding if you know it, or --format parquet for Parquet."),
    ("Leave encoding out to detect it, or pass the file's real encoding (e.g. "
     "encoding='cp1252').",
     "Leave --encoding out to detect it, or pass the file's real encoding (e.g. "
     "--encoding cp1252)."),
    ("Make the ids unique in the source, or leave id= out to make ids.",
     "Make the ids unique in the source, or leave --id out to make ids."),
    ("Rename them with a mapping, e.g. metadata={'id': 'source_id'}.",
     "Leave them out of --metadata, or rename the column in the file (the command line cannot "
     "give metadata new names)."),
    ("Rename it with metadata={'split': 'source_split'}.",
     "Leave it out of --metadata, or rename the column in the file (the command line cannot "
     "give metadata new names)."),
])
def test_import_hints_in_command_line_words(hint, flags):
    from workbench.cli import _as_flags

    assert _as_flags(hint) == flags


def test_import_format_aliases_and_separators(tmp_path):
    target = tmp_path / "p"
    run("init", str(target))
    rows = tmp_path / "rows.txt"
    rows.write_text('{"text": "a"}\n{"text": "b"}\n')
    done = run("import", str(rows), "--dataset", "rows", "--format", "ndjson", project=target)
    assert done.returncode == 0 and "Imported 2 rows from rows.txt (jsonl" in done.stdout
    wrong = run("import", str(rows), "--dataset", "rows", "--format", "xlsx", project=target)
    assert_one_line_error(wrong)
    assert "Unknown format 'xlsx'" in wrong.stderr
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\nhello;pos\n")
    hint = run("import", str(semi), "--dataset", "semi", "--expected", "label", project=target)
    assert_one_line_error(hint)
    assert "Pass --sep ';' (or save" in hint.stderr
    done = run("import", str(semi), "--dataset", "semi", "--expected", "label", "--sep", ";",
               project=target)
    assert done.returncode == 0, done.stderr
