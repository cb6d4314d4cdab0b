import os
from pathlib import Path

import pytest

# Keep tests reproducible and light on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """The smoke profile built once per session, notebooks and book; its ``_build/html``.

    The results folder of the build is ``smoke_book.parents[2]`` (``<out>/smoke``).
    """
    from vmflib.reproduce import reproduce

    out = tmp_path_factory.mktemp("smoke_book")
    assert reproduce("smoke", out=out, n_jobs=2, progress=False) == 0
    html = out / "smoke" / "book" / "_build" / "html"
    assert (html / "index.html").exists()
    return html
