"""`import workbench` stays light: heavy libraries load on first use, not at import."""

import json
import subprocess
import sys

HEAVY = ["litellm", "torch", "transformers", "marimo", "anywidget", "ipywidgets", "plotly",
         "pandas", "pydantic", "peft"]


def loaded_after(code: str, heavy: list[str] = HEAVY) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_workbench_loads_no_heavy_module():
    assert loaded_after("import workbench, workbench.llm, workbench.tracing") == []


def test_opening_a_project_loads_no_heavy_module(tmp_path):
    code = (f"import workbench; p = workbench.init_project({str(tmp_path / 'p')!r}); "
            "p.status()")
    # pydantic is fine here (records); model and UI libraries are not.
    assert loaded_after(code, [m for m in HEAVY if m != "pydantic"]) == []


def test_import_widgets_is_lazy_too():
    assert loaded_after("import widgets") == []


def test_llm_embed_stays_the_function_after_its_module_loads():
    code = ("import workbench.data.profiling, workbench.llm.embeddings\n"
            "from workbench import llm\n"
            "assert callable(llm.embed) and llm.embed.__module__ == 'workbench.llm.embeddings'")
    subprocess.run([sys.executable, "-c", code], check=True)
