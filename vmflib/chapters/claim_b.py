"""Chapter "Claim B": does gradient stochasticity follow directions rather than norms?

Reads the finished runs, adds DU = 1 / raw kappa, applies
:func:`vmflib.analysis.per_run_claim_b` (per-run correlations, Zou's and block-bootstrap
intervals, variance shares of the exact split of GS), :func:`vmflib.analysis.pooled_shares`
and :func:`vmflib.analysis.claim_b_table` (the rule is
:func:`vmflib.analysis.claim_b_verdict`) and returns the per-model verdicts, tables for the
reader, and the numbers the prose quotes. Runs recorded without the term columns
(gs_direction_term, gs_norm_term, gs_coupling_term) give an empty ``shares`` table and a
note in place of the shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import analysis
from .. import resampling as rs
from ..plots import model_style
from . import ChapterResult, finished_runs

#: What the prose says in place of the shares when the runs lack the term columns.
NO_SHARES = (
    "not available for these runs: they were recorded without the columns of the split"
    " (gs_direction_term, gs_norm_term, gs_coupling_term), so the shares, their figure and"
    " their part of the verdict are left out"
)


def compute(results_dir) -> ChapterResult:
    """:func:`assess` the finished runs under ``results_dir``."""
    return assess(finished_runs(results_dir))


def assess(runs: pd.DataFrame) -> ChapterResult:
    """Claim B on a measurement table (:func:`vmflib.results.load_runs`).

    Tables: ``runs`` (with du = 1/kappa_raw added), ``per_run``
    (:func:`vmflib.analysis.per_run_claim_b`), ``shares``
    (:func:`vmflib.analysis.pooled_shares`; empty without the term columns), ``verdicts``
    (:func:`vmflib.analysis.claim_b_table`, with the correlation and share verdicts added),
    ``summary`` (:func:`summary_table`), ``share_summary`` (:func:`share_summary_table`),
    ``run_summary`` (:func:`run_summary_table`).
    Numbers: b_n_supported, b_n_mixed, b_n_models, b_corr_n_supported,
    b_run_wins (runs where :func:`vmflib.analysis.du_dominates`), b_runs,
    b_runs_boot_above_zero, b_runs_zou_above_zero, ci_level, n_boot, majority
    (MAJORITY), min_distinct (resampling.MIN_DISTINCT), and the shares as
    text: b_shares_text, b_dir_share_min, b_other_share_max (:func:`share_numbers`).
    """
    runs = runs.assign(du=1.0 / runs["kappa_raw"])
    per_run = analysis.per_run_claim_b(runs)
    verdicts = analysis.claim_b_table(runs, per_run)
    has_shares = per_run.get("share_direction", pd.Series(dtype=float)).notna().any()
    by_model = per_run.groupby("model", sort=False)
    verdicts["corr_verdict"] = [analysis.correlation_verdict(g) for _, g in by_model]
    share_v = [analysis.share_verdict(g) if has_shares else "n/a" for _, g in by_model]
    verdicts["share_verdict"] = share_v
    shares = analysis.pooled_shares(per_run) if has_shares else pd.DataFrame()
    res = ChapterResult(
        tables=dict(
            runs=runs,
            per_run=per_run,
            shares=shares,
            verdicts=verdicts,
            summary=summary_table(verdicts),
            share_summary=share_summary_table(shares),
            run_summary=run_summary_table(per_run),
        )
    )
    res.add(
        b_n_supported=(verdicts["verdict"] == analysis.SUPPORTED).sum(),
        b_n_mixed=(verdicts["verdict"] == analysis.MIXED).sum(),
        b_n_models=len(verdicts),
        b_corr_n_supported=(verdicts["corr_verdict"] == analysis.SUPPORTED).sum(),
        b_run_wins=analysis.du_dominates(per_run).sum(),
        b_runs=len(per_run),
        b_runs_boot_above_zero=(per_run["boot_lo"] > 0).sum(),
        b_runs_zou_above_zero=(per_run["zou_lo"] > 0).sum(),
        ci_level=analysis.CI_LEVEL,
        n_boot=analysis.N_BOOT,
        majority=analysis.MAJORITY,
        min_distinct=rs.MIN_DISTINCT,
        **share_numbers(shares),
    )
    return res


def _ci(lo: float, hi: float) -> str:
    return "n/a" if not np.isfinite(lo) else f"[{lo:.2f}, {hi:.2f}]"


def share_numbers(shares: pd.DataFrame) -> dict[str, str]:
    """The shares as the prose quotes them (text, 'n/a' or :data:`NO_SHARES` without them):
    b_shares_text ('FNN: directions 0.97 [0.95, 0.99], norms ..., coupling ...; ...'),
    b_dir_share_min (the smallest pooled direction share over models), b_other_share_max
    (the largest |pooled share| of the norm or coupling term)."""
    if shares.empty:
        return dict(b_shares_text=NO_SHARES, b_dir_share_min="n/a", b_other_share_max="n/a")
    parts = []
    for model, g in shares.groupby("model", sort=False):
        g = g.set_index("term")
        terms = [
            f"{name} {g.loc[t, 'share']:.2f} {_ci(g.loc[t, 'lo'], g.loc[t, 'hi'])}"
            for t, name in (
                ("direction", "directions"),
                ("norm", "norms"),
                ("coupling", "coupling"),
            )
        ]
        parts.append(f"{model_style(model).label}: " + ", ".join(terms))
    direction = shares.loc[shares["term"] == "direction", "share"]
    other = shares.loc[shares["term"].isin(["norm", "coupling"]), "share"].abs()
    return dict(
        b_shares_text="; ".join(parts),
        b_dir_share_min=f"{direction.min():.2f}",
        b_other_share_max=f"{other.max():.2f}",
    )


def summary_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per model for the reader, as text: model label, seeds, Pearson r(GS, DU) and
    r(GS, GNS) with t intervals over seeds, the pooled |r(GS,DU)| - |r(GS,GNS)| with its
    interval, the runs where DU dominates with the sign test p, and the three verdicts."""

    def two(col):
        return verdicts[col].map("{:.2f}".format)

    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in verdicts["model"]],
            "seeds": verdicts["seeds"],
            "r(GS, DU)": two("r(GS,DU)") + " " + verdicts["r(GS,DU) CI"],
            "r(GS, GNS)": two("r(GS,GNS)") + " " + verdicts["r(GS,GNS) CI"],
            "pooled |r(GS, DU)| − |r(GS, GNS)|": two("|r_DU|-|r_GNS|") + " " + verdicts["diff CI"],
            "runs DU wins": [f"{a} of {n}" for a, n in zip(verdicts["agree"], verdicts["seeds"])],
            "sign test p": verdicts["sign_p"].map("{:.2g}".format),
            "by correlations": verdicts["corr_verdict"],
            "by shares": verdicts["share_verdict"],
            "verdict": verdicts["verdict"],
        }
    )


def share_summary_table(shares: pd.DataFrame) -> pd.DataFrame:
    """One row per model, as text: seeds and the pooled share of each term with its
    interval (empty without shares)."""
    if shares.empty:
        return pd.DataFrame()
    rows = []
    for model, g in shares.groupby("model", sort=False):
        g = g.set_index("term")
        row = {"model": model_style(model).label, "seeds": int(g["seeds"].max())}
        for t in ("direction", "norm", "coupling", "dir_minus_norm"):
            row[t.replace("_", " ")] = f"{g.loc[t, 'share']:.2f} " + _ci(
                g.loc[t, "lo"], g.loc[t, "hi"]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def run_summary_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per run, as text: model label, seed, points, r(GS, DU), r(GS, GNS), and the
    difference of their absolute values with Zou's and the block-bootstrap interval."""
    two = "{:.2f}".format
    return pd.DataFrame(
        {
            "model": [model_style(m).label for m in per_run["model"]],
            "seed": per_run["seed"],
            "points": per_run["points"],
            "r(GS, DU)": per_run["r_gs_du"].map(two),
            "r(GS, GNS)": per_run["r_gs_gns"].map(two),
            "|r(GS, DU)| − |r(GS, GNS)|": per_run["diff"].map(two),
            "Zou interval": [_ci(a, b) for a, b in zip(per_run["zou_lo"], per_run["zou_hi"])],
            "block-bootstrap interval": [
                _ci(a, b) for a, b in zip(per_run["boot_lo"], per_run["boot_hi"])
            ],
        }
    )
