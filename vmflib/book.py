"""The book's chapters, declared once, and its table of contents.

:data:`PARTS` is the one list of the book's pages, in reading order. A prose page is the
name of a Markdown file under ``book/``; an executed page is a :class:`Chapter`, the notebook
``notebooks/<name>.ipynb`` that papermill runs for every profile and that the book shows as
``notebooks/<name>``. :func:`toc` turns the list (plus the executed training-run notebooks
of one build, of which :func:`runs_in_detail` are shown) into Jupyter Book's ``_toc.yml``;
:mod:`vmflib.reproduce` reads :data:`CHAPTERS` to make its jobs and to check a profile's
chapter parameters.

Adding a chapter: write ``notebooks/<name>.ipynb`` (first code cell tagged ``parameters``)
and add ``Chapter("<name>")`` to a part below; profiles need not mention it.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Chapter kinds: "chapter" runs on its own; "results" reads training runs of the profile
#: (it gets ``results_dir`` and ``profile`` and runs after the runs).
KINDS = ("chapter", "results")


@dataclass(frozen=True)
class Chapter:
    """An executed chapter: ``notebooks/<name>.ipynb``, shown as ``notebooks/<name>``.

    ``group`` (results chapters only) names the runs it reads: the runs entries of a
    profile marked ``group: <group>``. A results chapter without a group reads the runs
    without one, so that runs made for one chapter (a grid of batch sizes and learning
    rates) do not enter the others.
    """

    name: str
    kind: str = "chapter"
    group: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Chapter kind must be one of {KINDS}, got {self.kind!r}")
        if self.group is not None and self.kind != "results":
            raise ValueError(f"only a results chapter reads a group of runs ({self.name!r})")

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"


@dataclass(frozen=True)
class Part:
    """A captioned part of the book: prose page names (``book/<name>.md``) and chapters."""

    caption: str
    pages: tuple[str | Chapter, ...]


#: The first page of the book (``book/intro.md``).
ROOT_PAGE = "intro"
#: Every page after the root, in reading order.
PARTS = (
    Part("Summary", (Chapter("summary", "results"),)),
    Part("Methods", ("methods", Chapter("vmf_estimation"), Chapter("toy_model"))),
    Part(
        "Results",
        (
            Chapter("claim_a", "results"),
            Chapter("claim_b", "results"),
            Chapter("du_drivers", "results", group="du_drivers"),
        ),
    ),
    Part("Appendix", ("runs", "reproducibility", "bibliography")),
)
#: The prose page whose sections are the executed notebooks of :func:`runs_in_detail`.
RUNS_PAGE = "runs"
#: The seed of the training runs shown in detail, one per model (:func:`runs_in_detail`).
DETAIL_SEED = 0
#: Where executed notebooks sit inside the assembled book (run notebooks in ``runs/``).
NOTEBOOK_DIR = "notebooks"
RUN_NOTEBOOK_DIR = f"{NOTEBOOK_DIR}/runs"

CHAPTERS: dict[str, Chapter] = {
    p.name: p for part in PARTS for p in part.pages if isinstance(p, Chapter)
}


def runs_in_detail(run_names) -> list[str]:
    """The names among ``run_names`` of the runs the book shows in detail: the ungrouped
    runs of seed :data:`DETAIL_SEED`, one per model and data set, in the given order.

    An ungrouped run is named ``<dataset>-<model>-seed<seed>``
    (:func:`vmflib.reproduce.run_name`; data set and model names have no '-'); a grouped
    run's name also holds its batch size and learning rate
    (``<dataset>-<model>-b<b>-lr<lr>-seed<seed>``) and is never chosen.
    """
    pattern = re.compile(rf"[^-]+-[^-]+-seed{DETAIL_SEED}")
    return [n for n in run_names if pattern.fullmatch(n)]


def toc(run_names=()) -> dict:
    """Jupyter Book's ``_toc.yml`` (format jb-book) for :data:`PARTS`.

    Args:
        run_names: the executed training-run notebooks of the build; those of
            :func:`runs_in_detail` are the sections of :data:`RUNS_PAGE`
            (``notebooks/runs/<name>``), the others are not in the book.
    """
    detail = runs_in_detail(run_names)
    parts = []
    for part in PARTS:
        entries = []
        for page in part.pages:
            if isinstance(page, Chapter):
                entries.append({"file": f"{NOTEBOOK_DIR}/{page.name}"})
                continue
            entry = {"file": page}
            if page == RUNS_PAGE and detail:
                entry["sections"] = [{"file": f"{RUN_NOTEBOOK_DIR}/{n}"} for n in detail]
            entries.append(entry)
        parts.append({"caption": part.caption, "chapters": entries})
    return {"format": "jb-book", "root": ROOT_PAGE, "parts": parts}


def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names assigned in the notebook's cell tagged ``parameters`` (the ones papermill sets)."""
    for cell in json.loads(path.read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return tuple(
                t.id
                for node in tree.body
                if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)
            )
    raise ValueError(f"{path} has no code cell tagged 'parameters'")


def build(book_dir: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML index."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir)]
    proc = subprocess.run([*cmd, "-W", "-n", "--keep-going"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            "jupyter-book build failed (warnings are errors):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return Path(book_dir) / "_build" / "html" / "index.html"
