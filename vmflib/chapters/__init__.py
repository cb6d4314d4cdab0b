"""The computations behind the book's chapters, one module per chapter notebook.

Each module exposes ``compute(...) -> ChapterResult``: the chapter's tables (DataFrames that
the figure functions of :mod:`vmflib.plots` draw and the notebook displays) and the numbers
its prose quotes (glued by name with myst-nb). A chapter notebook keeps its prose, its
papermill parameters, one ``compute`` call, the figure calls and :func:`glue_numbers`;
:func:`glue_figure` hands a figure to the prose's numbered ``{glue:figure}``, :func:`table`
shows a table (model labels, formatted numbers, no index).

Modules: :mod:`.vmf_estimation` (estimating kappa in high dimension), :mod:`.toy_model`
(the least-squares model), :mod:`.claim_a` and :mod:`.claim_b` (the verdicts on the runs).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class ChapterResult:
    """What a chapter computes.

    Attributes:
        tables: name -> DataFrame, the chapter's tables (input of its figures).
        numbers: name -> int, float or str, each quoted in the chapter's prose by
            ``{glue:text}`name``` (plain Python values, so that myst-nb can format them).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    numbers: dict[str, int | float | str] = field(default_factory=dict)

    def add(self, **values) -> None:
        """Add numbers, converted to plain ``int``, ``float`` or ``str``."""
        self.numbers.update({k: plain(v) for k, v in values.items()})


def plain(value) -> int | float | str:
    """``value`` as a plain Python int, float or str (numpy scalars, 0-d arrays and bools
    included; a bool becomes 0 or 1)."""
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"a glued number must be an int, a float or a str, got {type(value)}")


def glue_numbers(result: ChapterResult) -> None:
    """Glue every number of ``result`` under its name (myst-nb ``glue``, not displayed)."""
    from myst_nb import glue

    for name, value in result.numbers.items():
        glue(name, value, display=False)


def glue_figure(name: str, fig) -> None:
    """Glue ``fig`` under ``name`` for the prose's ``{glue:figure}`` directive (which numbers
    and captions it) and close it, so that the cell itself shows nothing."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def format_number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, in plain notation from 1e-3 to 1e6
    (thousands separated: 3,162; 0.0204; 25.4), else scientific (1.2e-08); integers, and
    floats with an integer value below 1e6, whole with thousands separators (10,000)."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return f"{value:,}"

    v = float(value)
    if not np.isfinite(v) or v == 0:
        return f"{v:g}"
    if v.is_integer() and abs(v) < 1e6:
        return f"{int(v):,}"
    magnitude = int(np.floor(np.log10(abs(v))))
    if not -3 <= magnitude < 6:
        return f"{v:.{digits - 1}e}"
    return f"{v:,.{max(0, digits - 1 - magnitude)}f}"


def format_p_value(p: float, digits: int = 3) -> str:
    """A p-value for display: :func:`format_number`, except that 0 (a p-value below the
    smallest float64, 5e-324, underflows to 0) reads '< 1e-300'."""
    return "< 1e-300" if p == 0 else format_number(p, digits)


#: CSS of a displayed table: room between the columns, a rule under the header.
TABLE_STYLES = [
    {"selector": "th, td", "props": "padding: 0.15em 0.5em;"},
    {"selector": "td", "props": "white-space: nowrap;"},
    {"selector": "thead th", "props": "border-bottom: 1px solid currentColor;"},
]


def table(df: pd.DataFrame, labels: dict | None = None, digits: int = 3):
    """``df`` for display: columns renamed by ``labels``, models by their labels
    (:func:`vmflib.plots.model_style`), numbers to ``digits`` significant digits
    (:func:`format_number`; integers whole, thousands separated), no index column.
    Returns a pandas Styler."""
    from ..plots import model_style

    shown = df.reset_index(drop=True)
    if "model" in shown:
        shown["model"] = [model_style(m).label for m in shown["model"]]
    numeric = [
        c
        for c in shown
        if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
    ]
    styler = shown.rename(columns=labels or {}).style.hide(axis="index")
    styler = styler.set_table_styles(TABLE_STYLES)
    renamed = [(labels or {}).get(c, c) for c in numeric]
    return styler.format(lambda v: format_number(v, digits), subset=renamed)


#: Run statuses whose measurements the results chapters use.
FINISHED = ("complete", "diverged")


def finished_runs(results_dir, *, layers: bool = False) -> pd.DataFrame:
    """The measurements (or, with ``layers``, the per-layer measurements) of every finished
    run under ``results_dir`` (:func:`vmflib.results.load_runs`); raises RuntimeError if
    there are none."""
    from ..results import load_runs

    df = load_runs(results_dir, layers=layers, status=FINISHED)
    if df.empty:
        raise RuntimeError(f"no finished runs under {results_dir}")
    return df
