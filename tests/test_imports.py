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


def test_every_part_of_the_kernel_is_an_attribute_of_the_root_loaded_on_first_use():
    import workbench

    code = ("import workbench as wb, sys\n"
            "assert 'workbench.serve' not in sys.modules\n"
            f"for name in {list(workbench.SUBMODULES)!r}:\n"
            "    part = getattr(wb, name)\n"
            "    assert part.__name__ == 'workbench.' + name, name\n"
            "assert set(wb.SUBMODULES) <= set(dir(wb))\n"
            "try:\n    wb.nothing_of_that_name\nexcept AttributeError:\n    pass\n"
            "else:\n    raise SystemExit('an unknown name must raise AttributeError')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stored_things_follow_one_naming_convention():
    """list_THINGS(project), THING_versions(project, name), load_THING(project, name, ...)."""
    from workbench import data, prompts, runs

    for module, thing in ((data, "dataset"), (prompts, "prompt")):
        for verb in (f"list_{thing}s", f"{thing}_versions", f"load_{thing}"):
            assert callable(getattr(module, verb)), f"{module.__name__}.{verb}"
    assert callable(runs.list_runs) and callable(runs.load_run)


def test_the_api_page_covers_every_part_of_the_kernel():
    from pathlib import Path

    import workbench

    page = (Path(__file__).parents[1] / "docs" / "API.md").read_text(encoding="utf-8")
    missing = [name for name in workbench.SUBMODULES if f"## `wb.{name}`" not in page]
    assert not missing, f"docs/API.md has no section for {missing}"
