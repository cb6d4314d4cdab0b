import os
from pathlib import Path

import pytest

# Keep tests reproducible and light on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """The smoke profile built once per session, notebooks and book; its ``_build/html``.

    The results folder of the build is ``smoke_book.parents[2]`` (``<out>/smoke``). With
    ``VMFLIB_TEST_BOOK=<out>/<profile>/book/_build/html`` the tests read that build instead
    (say the quick book of ``make reproduce``) and build nothing.
    """
    if os.environ.get("VMFLIB_TEST_BOOK"):
        html = Path(os.environ["VMFLIB_TEST_BOOK"]).resolve()
    else:
        from vmflib.reproduce import reproduce

        out = tmp_path_factory.mktemp("smoke_book")
        assert reproduce("smoke", out=out, n_jobs=2, progress=False) == 0
        html = out / "smoke" / "book" / "_build" / "html"
    assert (html / "index.html").exists(), f"no built book in {html}"
    return html
