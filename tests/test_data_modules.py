"""The data package's modules are modules: a function of the same name never hides one."""

import importlib

import pytest

import workbench.data as data


@pytest.mark.parametrize("module, function", [
    ("cleaning", "clean"), ("profiling", "profile"), ("splitting", "split"),
    ("versioning", "versions"), ("importing", "import_data")])
def test_each_module_imports_as_a_module_beside_its_function(module, function, monkeypatch):
    loaded = importlib.import_module(f"workbench.data.{module}")
    assert loaded.__name__ == f"workbench.data.{module}" and callable(getattr(data, function))
    assert getattr(data, module) is loaded  # the package attribute is the module, not a function
    name = next(n for n in vars(loaded) if not n.startswith("_") and callable(vars(loaded)[n]))
    monkeypatch.setattr(f"workbench.data.{module}.{name}", lambda *a, **k: None)  # pytest's way
