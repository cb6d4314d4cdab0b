"""The public surface: ``vmflib.__all__`` and ``vmflib.vmf.__all__`` (as optax_test.py does)."""

import importlib
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

import vmflib
from vmflib import vmf


@pytest.mark.parametrize("module", [vmflib, vmf], ids=lambda m: m.__name__)
def test_all_is_public_and_without_duplicates(module):
    assert module.__all__, "the public API is empty"
    assert len(set(module.__all__)) == len(module.__all__)
    private = [name for name in module.__all__ if name.startswith("_")]
    assert not private, f"private names exported: {private}"


@pytest.mark.parametrize("name", vmflib.__all__)
def test_each_name_is_its_home_modules_object(name):
    home = importlib.import_module(f"vmflib.{vmflib._HOMES[name]}")
    value = getattr(vmflib, name)
    assert value is getattr(home, name)
    if hasattr(value, "__module__"):  # functions and classes: defined there or below
        assert value.__module__.startswith(home.__name__), (name, value.__module__)


def test_all_lists_each_home_in_one_group():
    homes = [vmflib._HOMES[name] for name in vmflib.__all__]
    groups = [home for home, _ in itertools.groupby(homes)]
    assert len(groups) == len(set(groups)), f"a home module is split over groups: {groups}"


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from vmflib import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(vmflib.__all__)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        vmflib.no_such_name  # noqa: B018
    assert not hasattr(vmflib, "_HOMES_typo")
    assert set(vmflib.__all__) <= set(dir(vmflib))


def test_import_vmflib_imports_no_submodule_and_no_torch():
    code = (
        "import sys, vmflib; "
        "loaded = sorted(m for m in sys.modules if m.startswith('vmflib.') or m == 'torch'); "
        "print(loaded)"
    )
    root = Path(vmflib.__file__).parents[1]  # this checkout's vmflib, not an installed one
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", vmf.__all__)
def test_vmf_names_come_from_its_submodules(name):
    value = getattr(vmf, name)
    home = importlib.import_module(value.__module__)
    assert home.__name__.startswith("vmflib.vmf.") and getattr(home, name) is value
