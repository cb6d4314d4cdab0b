"""The built smoke book as a reader sees it offline (vmflib.bookcheck): nothing loaded from
another host, no absolute path of the build machine, and every page in headless Chromium
with the network blocked: math typeset, images loaded, no console errors."""

import importlib.util
from pathlib import Path

import pytest

from vmflib import bookcheck

ROOT = Path(__file__).resolve().parents[1]

HOW_TO_ENABLE = (
    "install Chromium (apt-get install chromium) and Playwright (pip install playwright, in "
    "the test extra) to run the browser check of the book"
)


def test_external_resources_finds_what_a_page_loads_not_its_links(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.css").write_text(
        '@import "https://fonts.example.org/f.css"; .x{background:url(data:image/png;base64,0)}'
    )
    (tmp_path / "p.html").write_text(
        '<script src="https://cdn.example.org/m.js"></script>'
        '<link rel="stylesheet" href="//cdn.example.org/s.css">'
        '<link rel="next" href="https://example.org/next.html">'
        '<img srcset="local.png 1x, https://img.example.org/i.png 2x">'
        "<div style=\"background: url('https://img.example.org/b.png')\"></div>"
        '<style>@font-face{src:url("https://fonts.example.org/f.woff2")}</style>'
        '<a href="https://arxiv.org/abs/1810.00150">paper</a><script src="_static/ok.js"></script>'
    )
    assert bookcheck.external_resources(tmp_path) == [
        "p.html: https://cdn.example.org/m.js",
        "p.html: //cdn.example.org/s.css",
        "p.html: https://img.example.org/i.png",
        "p.html: https://img.example.org/b.png",
        "p.html: https://fonts.example.org/f.woff2",
        "_static/a.css: https://fonts.example.org/f.css",
    ]


def test_absolute_paths_finds_machine_paths_not_urls_or_prose(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.html").write_text(
        '<pre>results_dir = <span>"/tmp/pytest-1/smoke/runs"</span></pre>'
        f"<p>read {tmp_path}/repo/data and /home/ann/x</p>"
        '<a href="https://example.org/tmp/x">and/or ../tmp/y a/work/b</a>'
    )
    found = bookcheck.absolute_paths(tmp_path, roots=[tmp_path])
    assert found == [
        "sub/p.html: /tmp/pytest-1/smoke/runs",
        f"sub/p.html: {tmp_path}/repo/data",
        "sub/p.html: /home/ann/x",
    ]


def test_smoke_book_loads_nothing_from_another_host(smoke_book):
    found = bookcheck.external_resources(smoke_book)
    assert not found, "\n".join(found)


def test_smoke_book_shows_no_absolute_path_of_the_build_machine(smoke_book):
    results = smoke_book.parents[2]
    found = bookcheck.absolute_paths(smoke_book, roots=[ROOT, results])
    assert not found, "\n".join(found)


def test_every_page_of_the_smoke_book_in_chromium_offline(request):
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(f"Playwright is not installed: {HOW_TO_ENABLE}")
    if bookcheck.find_chromium() is None:
        pytest.skip(f"no chromium on the PATH: {HOW_TO_ENABLE}")
    html = request.getfixturevalue("smoke_book")
    shots = html.parents[2] / "screenshots"
    reports = bookcheck.browse(html, shots)

    assert {r.page for r in reports} >= {"intro.html", "methods.html", "notebooks/claim_a.html"}
    problems = [f"{r.page}: {p}" for r in reports for p in r.problems]
    assert not problems, "\n".join(problems)
    assert sum(r.typeset for r in reports) > 0 and sum(r.images for r in reports) > 0
    for r in reports:
        assert r.screenshot.exists() and r.screenshot.stat().st_size > 10_000, r.page
