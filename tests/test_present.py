"""vmflib.book.present_notebook: an executed notebook made into a book page."""

import re
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vmflib import book


def executed(out, data):
    """A small notebook as papermill leaves it, with absolute paths of this machine."""
    runs = str(out / "runs")
    cells = [
        new_markdown_cell("# A chapter\n\nIntro."),
        new_code_cell('results_dir = "results/smoke/runs"', metadata={"tags": ["parameters"]}),
        new_code_cell(
            f'results_dir = "{runs}"\ndata_root = "{data}"',
            metadata={"tags": ["injected-parameters"]},
        ),
        new_code_cell("print(results_dir)", outputs=[new_output("stream", text=runs + "\n")]),
        new_code_cell("table", metadata={"tags": ["remove-input"]}),
        new_markdown_cell("## Section"),
    ]
    params = {"results_dir": runs, "config": {"model": "fnn", "lr": 0.1}, "data_root": data}
    params |= {"profile": "smoke", "seed": 0}
    return new_notebook(cells=cells), params


ABSOLUTE = re.compile(r"(?<![\w.])/(tmp|work|home|root|usr|opt)/")


def test_tags_box_and_no_absolute_path(tmp_path):
    out = tmp_path / "results" / "smoke"
    nb, params = executed(out, str(tmp_path / "elsewhere" / "data"))
    nb = book.present_notebook(
        nb, notebook="claim_a.ipynb", parameters=params, out=out, profile="smoke"
    )
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert tags == [
        ["parameters", "remove-cell"],
        ["injected-parameters", "remove-cell"],
        ["hide-input"],
        ["remove-input"],
    ]
    box = nb.cells[1]
    assert box.cell_type == "markdown" and "{admonition} Rerun this chapter" in box.source
    assert ".venv/bin/papermill notebooks/claim_a.ipynb out.ipynb" in box.source
    assert "-p results_dir results/smoke/runs" in box.source
    assert '-y "config: {model: fnn, lr: 0.1}"' in box.source
    assert "-p seed 0" in box.source and "-p profile smoke" in box.source
    assert "data_root" not in box.source  # a folder outside the repository: default applies
    assert "python -m vmflib reproduce --profile smoke" in box.source
    text = nbformat.writes(nb)
    assert not ABSOLUTE.search(text.replace(sys.prefix, "")), ABSOLUTE.search(text)
    assert str(tmp_path) not in text
    assert 'results_dir = \\"results/smoke/runs\\"' in text  # the injected cell, relative
    assert "results/smoke/runs\\n" in text  # the printed output, relative


def test_paths_in_the_repository_are_relative_to_its_root(tmp_path):
    inside = book.REPO_ROOT / "data"
    nb, params = executed(tmp_path / "smoke", str(inside))
    nb = book.present_notebook(
        nb, notebook="x.ipynb", parameters=params, out=tmp_path / "smoke", profile="smoke"
    )
    assert "-p data_root data" in nb.cells[1].source
    assert str(book.REPO_ROOT) not in nbformat.writes(nb)
