"""Run records: which code a run's cache key covers, and the digest over it."""

from __future__ import annotations

import pytest

from vmflib import results

FAKE_PACKAGE = {
    "a.py": "from . import b\nfrom .c import x\n\ndef f():\n    from .d.e import y\n",
    "b.py": "import os\nfrom . import __version__\n",
    "c.py": "from .b import z\n",
    "d/__init__.py": "from .e import y\n",
    "d/e.py": "from .. import f\nfrom ..g import w\n",
    "f.py": "import vmflib.h\n",
    "g.py": "",
    "h.py": "from vmflib import i\n",
    "i.py": "",
    "unread.py": "from . import a\n",
}


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    for name, text in FAKE_PACKAGE.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "__init__.py").write_text("from . import unread\n")
    monkeypatch.setattr(results, "PACKAGE", tmp_path)
    return tmp_path


def test_imported_modules_follows_every_import_form(fake_package):
    assert results.library_modules() == ("a", "b", "c", "d", "f", "g", "h", "i", "unread")
    # relative, from a function body, inside a subpackage (.. and .), absolute; the
    # package's own __init__ (__version__) and modules nothing imports are left out
    assert results.imported_modules("a") == ("a", "b", "c", "d", "f", "g", "h", "i")
    assert results.imported_modules("g") == ("g",)


def test_code_digest_changes_exactly_with_the_code_it_covers(fake_package):
    closure = results.imported_modules("a")
    before = results.code_digest(closure)
    (fake_package / "unread.py").write_text("# changed\n")
    assert results.code_digest(closure) == before
    (fake_package / "d" / "e.py").write_text("from .. import f\n# changed\n")
    assert results.code_digest(closure) != before
    assert results.code_version(closure).split("+")[0] == results.code_digest(closure)


def test_a_run_covers_the_code_that_computes_it():
    mods = set(results.imported_modules("train"))
    assert {"train", "sampling", "backends", "stats", "vmf", "data", "models", "results"} <= mods
    assert not mods & {"plots", "reproduce", "book", "bench", "analysis", "__main__"}
    assert set(results.TOOL_MODULES) <= set(results.library_modules())
