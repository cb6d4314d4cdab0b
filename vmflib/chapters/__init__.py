"""The computations behind the book's chapters, one module per chapter notebook.

Each module exposes ``compute(...) -> ChapterResult``: the chapter's tables (DataFrames that
the figure functions of :mod:`vmflib.plots` draw and the notebook displays) and the numbers
its prose quotes (glued by name with myst-nb). A chapter notebook keeps its prose, its
papermill parameters, one ``compute`` call, the figure calls and :func:`glue_numbers`.

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
