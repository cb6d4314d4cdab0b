"""A built HTML book checked as a reader sees it: offline, from ``file://``.

Three checks on the folder that ``jupyter-book build`` writes (``_build/html``):

- :func:`external_resources`: every resource a page would *load* from another host
  (scripts, stylesheets, fonts, images, frames; HTML attributes and CSS ``url(...)`` /
  ``@import``). Plain hyperlinks (``<a href>``) are not resources and are not reported.
- :func:`absolute_paths`: absolute paths of the build machine in the HTML text.
- :func:`browse`: every page opened in headless Chromium (Playwright, sync API) with every
  request that is not ``file://`` aborted; math typeset, images loaded, no console or page
  errors, a full-page screenshot of each page.

The pages are the ``.html`` files of the book, without the folders Sphinx keeps for its own
use (``_static``, ``_sources``, ``_images``: templates and copies, not pages). ``genindex.html``
and ``search.html`` are kept: both are plain pages that work from ``file://`` (the search
page loads its index, ``searchindex.js``, with a ``<script>`` tag). The browser skips pages
that only redirect (``index.html`` of a Jupyter Book is ``<meta http-equiv="Refresh">`` to
the root page), since their target is checked as a page of its own.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

#: Top-level folders of a Sphinx HTML build that hold assets, not pages.
ASSET_DIRS = ("_static", "_sources", "_images")

#: HTML attributes that make the browser fetch a resource, per tag.
RESOURCE_ATTRS = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}
#: ``<link rel=...>`` values that fetch their ``href`` (``next``, ``prev``, ``index``,
#: ``canonical`` ... are navigation and fetch nothing).
LOADING_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "prefetch",
    "preconnect",
    "dns-prefetch",
    "icon",
    "apple-touch-icon",
    "manifest",
}
#: A reference to another host: an http(s) URL or a protocol-relative ``//host/...``.
_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import\s+(['\"])(.*?)\1", re.IGNORECASE)


def pages(html_dir) -> list[Path]:
    """The book's pages: every ``.html`` file under ``html_dir`` outside :data:`ASSET_DIRS`."""
    root = Path(html_dir)
    return sorted(p for p in root.rglob("*.html") if p.relative_to(root).parts[0] not in ASSET_DIRS)


_REDIRECT = re.compile(r'^\s*<meta http-equiv="refresh"[^>]*>\s*$', re.IGNORECASE)


def is_redirect(page: Path) -> bool:
    """Whether the page is only a ``<meta http-equiv="Refresh">`` to another page."""
    return bool(_REDIRECT.match(page.read_text(encoding="utf-8", errors="replace")))


# --- references to other hosts ---------------------------------------------------------------
def css_references(css: str) -> list[str]:
    """The targets of ``url(...)`` and ``@import "..."`` in a stylesheet (``data:`` included)."""
    return [m.group(2) for m in _CSS_URL.finditer(css)] + [
        m.group(2) for m in _CSS_IMPORT.finditer(css)
    ]


class _ResourceParser(HTMLParser):
    """Collects the resource URLs of one HTML document (attributes, inline CSS)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        names = RESOURCE_ATTRS.get(tag, ())
        if tag == "link" and LOADING_RELS & set(a.get("rel", "").lower().split()):
            names = ("href",)
        for name in names:
            if name in a:  # srcset: "url 1x, url 2x"
                parts = a[name].split(",") if name.endswith("srcset") else [a[name]]
                self.urls += [p.split()[0] for p in parts if p.split()]
        self.urls += css_references(a.get("style", ""))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += css_references(data)


def external_resources(html_dir) -> list[str]:
    """Every resource a page or stylesheet of the book loads from another host.

    Scans the HTML attributes of :data:`RESOURCE_ATTRS`, ``<link>`` with a rel in
    :data:`LOADING_RELS`, ``style`` attributes and ``<style>`` elements of every page, and
    ``url(...)``/``@import`` of every ``.css`` file under ``html_dir`` (``_static``
    included). Returns ``"<file relative to html_dir>: <url>"``, one per reference.
    """
    root = Path(html_dir)
    found = []
    for page in pages(root):
        parser = _ResourceParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(root)}: {u}" for u in parser.urls if _EXTERNAL.match(u)]
    for css in sorted(root.rglob("*.css")):
        refs = css_references(css.read_text(encoding="utf-8", errors="replace"))
        found += [f"{css.relative_to(root)}: {u}" for u in refs if _EXTERNAL.match(u)]
    return found


# --- absolute paths of the build machine -----------------------------------------------------
#: Top-level folders whose paths only a machine's file system has: temporary files, home
#: folders (Linux, macOS), the workspace folder of this project's machines.
MACHINE_PREFIXES = ("/tmp/", "/home/", "/work/", "/root/", "/Users/", "/private/var/")


def _path_pattern(roots) -> re.Pattern:
    """``<prefix>...`` for each of :data:`MACHINE_PREFIXES` and ``roots``, not preceded by a
    character that can sit before ``/`` inside a URL or a relative path."""
    prefixes = {str(Path(r).resolve()).rstrip("/") + "/" for r in roots} | set(MACHINE_PREFIXES)
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(rf"(?<![\w.~%/:-])(?:{alternatives})[^\s\"'<>)]*")


def absolute_paths(html_dir, roots=()) -> list[str]:
    """Absolute paths of the build machine in the HTML of each page.

    Looks for the folders ``roots`` (say the repository and the results folder) and the
    prefixes :data:`MACHINE_PREFIXES`, as whole path components ending in ``/``, in each
    page's HTML source (text and attributes). A match must not follow a word character,
    ``.``, ``~``, ``%``, ``/``, ``:`` or ``-``: so ``https://host/tmp/x``, ``../tmp/x``,
    ``a/home/b`` and ``and/or`` never match, and prose has no other way to write
    ``/tmp/`` or ``/home/`` than as a path. Returns ``"<page>: <path>"``, one per occurrence.
    """
    root = Path(html_dir)
    pattern = _path_pattern(roots)
    return [
        f"{page.relative_to(root)}: {m.group(0)}"
        for page in pages(root)
        for m in pattern.finditer(page.read_text(encoding="utf-8", errors="replace"))
    ]


# --- the book in a browser -------------------------------------------------------------------
@dataclass
class PageReport:
    """What a reader's browser saw on one page.

    ``math`` counts the elements Sphinx marks as math (class ``math``), ``typeset`` the
    MathJax containers (``mjx-container``) after MathJax finished.
    """

    page: str
    screenshot: Path | None = None
    math: int = 0
    typeset: int = 0
    images: int = 0
    blocked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


#: Seconds a page may take to load and typeset.
PAGE_TIMEOUT_S = 60

# Text nodes a reader sees, outside code: raw TeX delimiters left there mean untypeset math.
_VISIBLE_TEXT_JS = """() => {
  const skip = 'pre, code, script, style, mjx-container, .highlight';
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || el.getClientRects().length === 0) continue;
    out.push(n.textContent);
  }
  return out.join(' ');
}"""
_SETTLE_JS = """async (limitMs) => {
  const ready = async () => {
    for (const img of document.images) img.loading = 'eager';
    await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done);
                            img.addEventListener('error', done); })));
    if (window.MathJax && MathJax.startup && MathJax.startup.promise)
      await MathJax.startup.promise;
    return true;
  };
  const limit = new Promise(done => setTimeout(() => done(false), limitMs));
  return {
    finished: await Promise.race([ready(), limit]),
    math: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
    errors: document.querySelectorAll('mjx-merror').length,
    images: document.images.length,
    broken: Array.from(document.images)
      .filter(img => !(img.complete && img.naturalWidth > 0))
      .map(img => img.getAttribute('src')),
  };
}"""
_RAW_TEX = re.compile(r"\\[(\[]")


def find_chromium(chromium=None) -> str | None:
    """The Chromium executable: ``chromium`` if given, else ``chromium`` on the PATH."""
    return str(chromium) if chromium else shutil.which("chromium")


def browse(html_dir, screenshots_dir, chromium=None) -> list[PageReport]:
    """Open every page of :func:`pages` from ``file://`` in headless Chromium, network off.

    Every request that is not ``file://`` is aborted and listed in ``blocked``. On each page
    it waits for the images and for MathJax (``MathJax.startup.promise``), then reports as
    problems: blocked or failed requests, console errors, uncaught page errors, math
    elements without MathJax output, MathJax TeX errors (``mjx-merror``), ``\\(`` or ``\\[``
    left in the visible text outside code, and images with ``naturalWidth == 0``. A
    full-page screenshot goes to ``screenshots_dir/<page path with / as __>.png``.

    Needs the ``playwright`` package and a Chromium (:func:`find_chromium`); Playwright's
    own browser downloads are never used.
    """
    from playwright.sync_api import sync_playwright

    exe = find_chromium(chromium)
    if exe is None:
        raise FileNotFoundError("no Chromium: install it (apt-get install chromium)")
    root = Path(html_dir).resolve()
    shots = Path(screenshots_dir)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            return [
                _visit(context, root, page, shots) for page in pages(root) if not is_redirect(page)
            ]
        finally:
            browser.close()


def _visit(context, root: Path, path: Path, shots: Path) -> PageReport:
    """Load one page and fill its :class:`PageReport` (see :func:`browse`)."""
    rep = PageReport(str(path.relative_to(root)))
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_S * 1000)

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            rep.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and rep.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: rep.problems.append(f"page error: {e}"))
    page.on(
        "requestfailed",
        lambda r: r.url.startswith("file:") and rep.problems.append(f"failed to load {r.url}"),
    )
    try:
        page.goto(path.as_uri(), wait_until="load")
        state = page.evaluate(_SETTLE_JS, PAGE_TIMEOUT_S * 1000)
        text = page.evaluate(_VISIBLE_TEXT_JS)
        rep.screenshot = shots / (rep.page.replace("/", "__").removesuffix(".html") + ".png")
        page.screenshot(path=str(rep.screenshot), full_page=True)
    finally:
        page.close()
    rep.math, rep.typeset, rep.images = state["math"], state["typeset"], state["images"]
    rep.problems += [f"blocked request to {u}" for u in rep.blocked]
    if not state["finished"]:
        rep.problems.append(f"images or MathJax not ready after {PAGE_TIMEOUT_S} s")
    if rep.math and not rep.typeset:
        rep.problems.append(f"{rep.math} math elements, none typeset by MathJax")
    if state["errors"]:
        rep.problems.append(f"{state['errors']} MathJax TeX errors")
    text = " ".join(text.split())
    raw = sorted({text[max(0, m.start() - 20) : m.end() + 20] for m in _RAW_TEX.finditer(text)})
    rep.problems += [f"raw TeX in the text: ...{s}..." for s in raw[:5]]
    rep.problems += [f"image not loaded: {src}" for src in state["broken"]]
    return rep
