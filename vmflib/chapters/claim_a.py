"""Chapter "Claim A": does the directional uniformity of minibatch gradients grow?

Reads the finished runs, applies :func:`vmflib.analysis.per_run_claim_a` (block-bootstrap
intervals per run) and :func:`vmflib.analysis.claim_a_table` (pooled over seeds, the rule is
:func:`vmflib.analysis.claim_a_verdict`) and returns the per-model verdicts, tables for the
reader, and the numbers the prose quotes (the rule's constants among them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import analysis
from .. import resampling as rs
from ..plots import model_style
from ..stats import NULL_BAND
from . import ChapterResult, finished_runs


def compute(results_dir) -> ChapterResult:
    """:func:`assess` the finished runs under ``results_dir``."""
    return assess(finished_runs(results_dir), finished_runs(results_dir, layers=True))


def assess(runs: pd.DataFrame, layers: pd.DataFrame) -> ChapterResult:
    """Claim A on measurement tables (:func:`vmflib.results.load_runs`).

    Tables: ``runs`` and ``layers`` (as given), ``per_run``
    (:func:`vmflib.analysis.per_run_claim_a`), ``verdicts``
    (:func:`vmflib.analysis.claim_a_table`), ``summary`` (:func:`summary_table`),
    ``run_summary`` (:func:`run_summary_table`).
    Numbers: a_n_supported, a_n_mixed, a_n_models, a_runs, a_runs_agree (runs with
    rho < 0), a_runs_excluding_zero (runs whose interval lies below 0), ci_level, n_boot, majority
    (MAJORITY), min_distinct (resampling.MIN_DISTINCT),
    null_band_lo, null_band_hi (the quantiles of the null band).
    """
    per_run = analysis.per_run_claim_a(runs)
    verdicts = analysis.claim_a_table(runs, per_run)
    res = ChapterResult(
        tables=dict(
            runs=runs,
            layers=layers,
            per_run=per_run,
            verdicts=verdicts,
            summary=summary_table(verdicts),
            run_summary=run_summary_table(per_run),
        )
    )
    res.add(
        a_n_supported=(verdicts["verdict"] == analysis.SUPPORTED).sum(),
        a_n_mixed=(verdicts["verdict"] == analysis.MIXED).sum(),
        a_n_models=len(verdicts),
        a_runs=len(per_run),
        a_runs_agree=(per_run["rho_epoch_kappa"] < 0).sum(),
        a_runs_excluding_zero=(per_run["rho_hi"] < 0).sum(),
        ci_level=analysis.CI_LEVEL,
        n_boot=analysis.N_BOOT,
        majority=analysis.MAJORITY,
        min_distinct=rs.MIN_DISTINCT,
        null_band_lo=NULL_BAND[0],
        null_band_hi=NULL_BAND[-1],
    )
    return res


def _ci(lo: float, hi: float, fmt: str = "{:.2f}") -> str:
    """'[lo, hi]' in ``fmt``, or 'n/a' without an interval."""
    return "n/a" if np.isnan(lo) else "[" + fmt.format(lo) + ", " + fmt.format(hi) + "]"


def summary_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per model for the reader, as text: model label, seeds, the pooled Spearman
    rho(epoch, kappa) with its interval, the runs with rho < 0 and the sign test p, debiased
    kappa at the first and last point, the mean ratio, and the verdict."""
    level = f"{analysis.CI_LEVEL:.0%} CI"
    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in verdicts["model"]],
            "seeds": verdicts["seeds"],
            "pooled ρ(epoch, κ)": verdicts["rho(epoch, kappa)"].map("{:.2f}".format),
            level: [_ci(lo, hi) for lo, hi in zip(verdicts["ci_lo"], verdicts["ci_hi"])],
            "runs with ρ below 0": [
                f"{a} of {n}" for a, n in zip(verdicts["agree"], verdicts["seeds"])
            ],
            "sign test p": verdicts["sign_p"].map("{:.2g}".format),
            "κ first": verdicts["kappa first"].map("{:.3g}".format),
            "κ last": verdicts["kappa last"].map("{:.3g}".format),
            "last/first": verdicts["last/first"].map("{:.2f}".format),
            "verdict": verdicts["verdict"],
        }
    )


def run_summary_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per run, as text: model label, seed, points, Spearman rho(epoch, kappa) and
    kappa last / first, each with its block-bootstrap interval."""
    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in per_run["model"]],
            "seed": per_run["seed"],
            "points": per_run["points"],
            "ρ(epoch, κ)": per_run["rho_epoch_kappa"].map("{:.2f}".format),
            "ρ interval": [_ci(lo, hi) for lo, hi in zip(per_run["rho_lo"], per_run["rho_hi"])],
            "κ last/first": per_run["ratio"].map("{:.3g}".format),
            "ratio interval": [
                _ci(lo, hi, "{:.3g}") for lo, hi in zip(per_run["ratio_lo"], per_run["ratio_hi"])
            ],
        }
    )
