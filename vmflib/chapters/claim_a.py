"""Chapter "Claim A": does the directional uniformity of minibatch gradients grow?

Reads the finished runs, applies :func:`vmflib.analysis.claim_a_table` (the rule is
:func:`vmflib.analysis.claim_a_verdict`) and returns the per-model verdicts, a table for the
reader, and the numbers the prose quotes (the rule's thresholds among them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import analysis
from ..plots import model_style
from ..stats import NULL_BAND
from . import ChapterResult, finished_runs


def compute(results_dir) -> ChapterResult:
    """:func:`assess` the finished runs under ``results_dir``."""
    return assess(finished_runs(results_dir), finished_runs(results_dir, layers=True))


def assess(runs: pd.DataFrame, layers: pd.DataFrame) -> ChapterResult:
    """Claim A on measurement tables (:func:`vmflib.results.load_runs`).

    Tables: ``runs`` and ``layers`` (as given), ``verdicts``
    (:func:`vmflib.analysis.claim_a_table`), ``summary`` (:func:`summary_table`).
    Numbers: a_n_supported, a_n_models, a_mean_rho_max (CLAIM_A_MEAN_RHO), ci_level,
    null_band_lo, null_band_hi (the quantiles of the null band).
    """
    verdicts = analysis.claim_a_table(runs)
    res = ChapterResult(
        tables=dict(runs=runs, layers=layers, verdicts=verdicts, summary=summary_table(verdicts))
    )
    res.add(
        a_n_supported=(verdicts["verdict"] == analysis.SUPPORTED).sum(),
        a_n_models=len(verdicts),
        a_mean_rho_max=analysis.CLAIM_A_MEAN_RHO,
        ci_level=analysis.CI_LEVEL,
        null_band_lo=NULL_BAND[0],
        null_band_hi=NULL_BAND[-1],
    )
    return res


def _ci(lo: float, hi: float) -> str:
    return "n/a (1 seed)" if np.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]"


def summary_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per model for the reader, as text: model label, seeds, Spearman rho(epoch,
    kappa) with its interval, debiased kappa at the first and last point, their ratio, and
    the verdict."""
    level = f"{analysis.CI_LEVEL:.0%} CI"
    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in verdicts["model"]],
            "seeds": verdicts["seeds"],
            "Spearman ρ(epoch, κ)": verdicts["rho(epoch, kappa)"].map("{:.2f}".format),
            level: [_ci(lo, hi) for lo, hi in zip(verdicts["ci_lo"], verdicts["ci_hi"])],
            "κ first": verdicts["kappa first"].map("{:.3g}".format),
            "κ last": verdicts["kappa last"].map("{:.3g}".format),
            "last/first": verdicts["last/first"].map("{:.2f}".format),
            "verdict": verdicts["verdict"],
        }
    )
