"""Chapter "Claim B": does gradient stochasticity follow directions rather than norms?

Reads the finished runs, adds DU = 1 / raw kappa, applies
:func:`vmflib.analysis.claim_b_table` (the rule is :func:`vmflib.analysis.claim_b_verdict`)
and returns the per-model verdicts, a table for the reader, and the numbers the prose quotes.
"""

from __future__ import annotations

import pandas as pd

from .. import analysis
from ..plots import model_style
from . import ChapterResult, finished_runs


def compute(results_dir) -> ChapterResult:
    """:func:`assess` the finished runs under ``results_dir``."""
    return assess(finished_runs(results_dir))


def assess(runs: pd.DataFrame) -> ChapterResult:
    """Claim B on a measurement table (:func:`vmflib.results.load_runs`).

    Tables: ``runs`` (with du = 1/kappa_raw added), ``per_run``
    (:func:`vmflib.analysis.per_run_claim_b`), ``verdicts``
    (:func:`vmflib.analysis.claim_b_table`), ``summary`` (:func:`summary_table`).
    Numbers: b_n_supported, b_n_models, b_run_wins (runs where
    :func:`vmflib.analysis.du_dominates`), b_runs, ci_level.
    """
    runs = runs.assign(du=1.0 / runs["kappa_raw"])
    per_run = analysis.per_run_claim_b(runs)
    verdicts = analysis.claim_b_table(runs)
    res = ChapterResult(
        tables=dict(runs=runs, per_run=per_run, verdicts=verdicts, summary=summary_table(verdicts))
    )
    res.add(
        b_n_supported=(verdicts["verdict"] == analysis.SUPPORTED).sum(),
        b_n_models=len(verdicts),
        b_run_wins=analysis.du_dominates(per_run).sum(),
        b_runs=len(per_run),
        ci_level=analysis.CI_LEVEL,
    )
    return res


def summary_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per model for the reader, as text: model label, seeds, Pearson r(GS, DU) and
    r(GS, GNS) with intervals, Spearman rho of each, |r(GS,DU)| - |r(GS,GNS)| with its
    interval, and the verdict."""

    def two(col):
        return verdicts[col].map("{:.2f}".format)

    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in verdicts["model"]],
            "seeds": verdicts["seeds"],
            "r(GS, DU)": two("r(GS,DU)") + " " + verdicts["r(GS,DU) CI"],
            "r(GS, GNS)": two("r(GS,GNS)") + " " + verdicts["r(GS,GNS) CI"],
            "ρ(GS, DU)": two("rho(GS,DU)"),
            "ρ(GS, GNS)": two("rho(GS,GNS)"),
            "|r(GS, DU)| − |r(GS, GNS)|": two("|r_DU|-|r_GNS|") + " " + verdicts["diff CI"],
            "verdict": verdicts["verdict"],
        }
    )
