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

#: The repository root (rerun commands are written relative to it) and the folder of the
#: committed notebooks, ``notebooks/<name>.ipynb``.
REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"

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
    (:func:`vmflib.reproduce.profiles.run_name`; data set and model names have no '-'); a grouped
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


def notebook_defaults(path: Path) -> dict[str, tuple[object, str]]:
    """name -> (default value, the line's comment) for every name assigned in the notebook's
    cell tagged ``parameters`` (the ones papermill sets); the value is ``...`` where it is
    not a Python literal. ValueError when the notebook has no such cell."""
    for cell in json.loads(Path(path).read_text())["cells"]:
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        lines = source.splitlines()
        found = {}
        for node in ast.parse(source).body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = ...
            comment = lines[node.lineno - 1].partition("#")[2].strip()
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    found[t.id] = (value, comment)
        return found
    raise ValueError(f"{path} has no code cell tagged 'parameters'")


def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names assigned in the notebook's cell tagged ``parameters`` (the ones papermill sets)."""
    return tuple(notebook_defaults(path))


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


# --- presenting executed notebooks ------------------------------------------------------------
#: Tags that already decide how a code cell's input is shown.
INPUT_TAGS = ("remove-input", "remove-cell", "hide-input")
#: Tags of the cells that hold papermill's parameters (its defaults and the injected values).
PARAMETER_TAGS = ("parameters", "injected-parameters")


def present_notebook(nb, *, notebook: str, parameters: dict, out: Path, profile: str):
    """``nb`` (an executed notebook, nbformat v4) made into a book page, in place; returns it.

    - the cells tagged ``parameters`` and ``injected-parameters`` get ``remove-cell``;
      every other code cell without one of :data:`INPUT_TAGS` gets ``hide-input``;
    - a "Rerun this chapter" admonition (:func:`rerun_box`) follows the first markdown cell;
    - every absolute path of this build in a cell source or text output (the folders of
      ``parameters``, the results folder ``out.parent``, the repository root, the Python
      prefix) is written relative (:func:`relative_paths`).

    Args:
        notebook: the notebook's file name under ``notebooks/``.
        parameters: the values papermill injected.
        out: the profile's results folder (``<results>/<profile>``).
        profile: the profile that made this build.
    """
    import nbformat

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in PARAMETER_TAGS):
            if "remove-cell" not in tags:
                tags.append("remove-cell")
        elif not any(t in tags for t in INPUT_TAGS):
            tags.append("hide-input")
    box = nbformat.v4.new_markdown_cell(rerun_box(notebook, parameters, out, profile))
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first + 1, box)
    replace = _path_replacements(parameters, out)
    for cell in nb.cells:
        cell.source = relative_paths(cell.source, replace)
        for output in cell.get("outputs", []):
            _relative_output(output, replace)
    return nb


#: Parameters of a build that a reader's rerun should not repeat (``force``: recompute a
#: finished run, set by ``reproduce --force``).
NOT_RERUN = ("force",)


def rerun_box(notebook: str, parameters: dict, out: Path, profile: str) -> str:
    """MyST admonition with the papermill command that reruns ``notebook`` with
    ``parameters`` (from the repository root; mappings and lists as ``-y`` YAML, the rest
    as ``-p``) and the ``python -m vmflib reproduce`` command of the whole profile."""
    import yaml

    args = []
    for name, value in parameters.items():
        if name in NOT_RERUN:
            continue
        value = _relative_parameter(value, out)
        if value is _DROP:
            continue
        if isinstance(value, dict | list):
            flow = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
            args.append(f'-y "{name}: {flow.strip()}"')
        elif value is None:
            args.append(f'-y "{name}: null"')
        else:
            args.append(f"-p {name} {_shell_word(value)}")
    lines = [f".venv/bin/papermill notebooks/{notebook} out.ipynb", *args]
    command = " \\\n    ".join(lines)
    return (
        "```{admonition} Rerun this chapter\n:class: tip\n\n"
        "From the repository root, this page's notebook with the parameters of this build "
        f"(profile **{profile}**; paths are relative to the repository root):\n\n"
        f"~~~bash\n{command}\n~~~\n\n"
        "or the whole profile, training runs and book included:\n\n"
        f"~~~bash\n.venv/bin/python -m vmflib reproduce --profile {profile}\n~~~\n```\n"
    )


_DROP = object()


def _relative_parameter(value, out: Path):
    """A parameter value with absolute paths made relative (:func:`_relative_path`); an
    absolute path outside the repository and the results folder is dropped (``_DROP``):
    the notebook's default applies."""
    if isinstance(value, dict):
        return {
            k: v
            for k, v in ((k, _relative_parameter(v, out)) for k, v in value.items())
            if v is not _DROP
        }
    if isinstance(value, list):
        return [_relative_parameter(v, out) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return _relative_path(Path(value), out) or _DROP
    return value


def _relative_path(path: Path, out: Path) -> str | None:
    """``path`` relative to the repository root, or under ``results/`` (the default results
    folder) when it lies in the results folder ``out.parent``; None if neither."""
    for base, prefix in ((Path(out).parent, Path("results")), (REPO_ROOT, Path("."))):
        if path.is_relative_to(base):
            return (prefix / path.relative_to(base)).as_posix()
    return None


def _shell_word(value) -> str:
    s = str(value)
    safe = all(ch.isalnum() or ch in "-_./:=+,@%" for ch in s) and s != ""
    return s if safe else "'" + s.replace("'", "'\"'\"'") + "'"


def _path_replacements(parameters: dict, out: Path) -> list[tuple[str, str]]:
    """(absolute prefix, replacement) pairs, longest prefix first."""
    pairs = {str(Path(out).parent): "results", str(REPO_ROOT): ".", sys.prefix: "<python>"}

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and Path(value).is_absolute():
            rel = _relative_path(Path(value), out)
            pairs.setdefault(value, rel if rel is not None else f"<{Path(value).name}>")

    walk(parameters)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def relative_paths(text: str, replace: list[tuple[str, str]]) -> str:
    """``text`` with each absolute prefix of ``replace`` swapped for its replacement."""
    for prefix, new in replace:
        text = text.replace(prefix, new)
    return text


def _relative_output(output, replace) -> None:
    if "text" in output:
        output["text"] = relative_paths(output["text"], replace)
    for key, value in output.get("data", {}).items():
        if key.startswith("text/") and isinstance(value, str):
            output["data"][key] = relative_paths(value, replace)
    if "traceback" in output:
        output["traceback"] = [relative_paths(t, replace) for t in output["traceback"]]
