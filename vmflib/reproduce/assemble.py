"""The book of one reproduction: prose, executed notebooks, table of contents, job tables.

:func:`assemble_book` writes ``<out>/book`` from the checkout's ``book/`` and the executed
notebooks; :func:`vmflib.book.build` turns it into HTML.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import yaml

from .. import book, results
from . import layout
from .jobs import Job
from .layout import cache_file
from .profiles import Profile


def assemble_book(prof: Profile, out: Path, jobs: list[Job]) -> Path:
    """Copy the book's prose, the top-level _config.yml and the executed notebooks (chapters,
    and one training run per model, :func:`vmflib.book.runs_in_detail`) into <out>/book;
    write its _toc.yml (:func:`vmflib.book.toc`) and the reproducibility tables."""
    book_dir = Path(out) / "book"
    if book_dir.exists():
        for p in book_dir.iterdir():
            if p.name != "_build":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    (book_dir / book.RUN_NOTEBOOK_DIR).mkdir(parents=True, exist_ok=True)
    for p in layout.BOOK.iterdir():
        if p.is_file() and not p.name.startswith("."):
            shutil.copy2(p, book_dir / p.name)
    cfg = yaml.safe_load((layout.ROOT / "_config.yml").read_text())
    cfg["title"] = f"{cfg.get('title', '')} ({prof.name} profile)"
    cfg["bibtex_bibfiles"] = ["references.bib"]  # paths inside the assembled book
    (book_dir / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    by_name = {j.name: j for j in jobs}

    def presented(j: Job):  # the executed notebook as a page: code hidden, rerun box
        nb = nbformat.read(j.output, as_version=4)
        kw = {"notebook": j.notebook, "parameters": j.parameters, "out": out}
        return book.present_notebook(nb, **kw, profile=prof.name)

    for name in book.CHAPTERS:
        dest = book_dir / book.NOTEBOOK_DIR / f"{name}.ipynb"
        job = by_name.get(name)
        if job is not None and Path(job.output).exists():
            nbformat.write(presented(job), dest)
        else:  # keep the book buildable; say why the chapter is missing
            dest.with_suffix(".md").write_text(_missing_chapter(prof, out, name, job))
    executed = [j.name for j in jobs if j.kind == "run" and Path(j.output).exists()]
    shown = set(book.runs_in_detail(executed))
    runs = [j for j in jobs if j.name in shown]
    for j in runs:
        nb = presented(j)
        heading = next(c for c in nb.cells if c.cell_type == "markdown")
        heading.source = f"# Training run {j.name}\n" + heading.source.split("\n", 1)[-1]
        nbformat.write(nb, book_dir / book.RUN_NOTEBOOK_DIR / f"{j.name}.ipynb")
    toc = book.toc([j.name for j in runs])
    (book_dir / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (book_dir / "generated_runs.md").write_text(reproducibility_tables(prof, out, jobs))
    return book_dir


def _missing_chapter(prof: Profile, out: Path, name: str, job: Job | None) -> str:
    if job is None:
        why = f"The {prof.name} profile leaves this chapter out (or has no runs it reads)."
    else:
        rec = cache_file(out, job)
        err = json.loads(rec.read_text()).get("error", "") if rec.exists() else "not run"
        why = f"This chapter's notebook did not run in this build:\n\n```text\n{err}\n```"
    return f"# {name} (not in this build)\n\n{why}\n"


def reproducibility_tables(prof: Profile, out: Path, jobs: list[Job]) -> str:
    """Markdown tables: environment, every job (status, seconds, cache key), every run
    (linked to its executed notebook in the book)."""
    v = results.versions()
    lines = ["## Environment of this build", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | `{val}` |" for k, val in sorted(v.items())]
    lines += ["", f"Profile **{prof.name}**: {prof.description}", "", "## Jobs", ""]
    lines += ["| notebook | job | status | seconds | cache key |", "|---|---|---|---|---|"]
    for j in jobs:
        f = cache_file(out, j)
        rec = json.loads(f.read_text()) if f.exists() else {}
        status, seconds = rec.get("status", "not run"), rec.get("seconds", float("nan"))
        lines.append(f"| `{j.notebook}` | {j.name} | {status} | {seconds:.1f} | `{j.key[:12]}` |")
    lines += ["", "## Training runs", ""]
    lines += ["The cache key is the one in the run folder's `meta.json`.", ""]
    lines += ["| run | d | device | status | seconds | data fingerprint | run cache key |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for j in jobs:
        mp = Path(j.parameters["out_dir"]) / results.META if j.kind == "run" else None
        if mp is None or not mp.exists():
            continue
        m = json.loads(mp.read_text())
        name = j.name
        if Path(j.output).exists() and book.runs_in_detail([j.name]):
            name = f"{{doc}}`{j.name} <{book.RUN_NOTEBOOK_DIR}/{j.name}>`"
        cells = [name, m.get("d"), m.get("device"), m.get("status")]
        fp = m.get("data_fingerprint", "")
        cells += [f"{m.get('seconds', 0):.1f}", f"`{fp if ':' in fp else fp[:12]}`"]
        cells += [f"`{m.get('cache_key', '')[:12]}`"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
