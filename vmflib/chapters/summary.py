"""Chapter "Summary": each claim's verdict, interval and key figure, and what the build cost.

Nothing is judged here that the results chapters do not judge: the verdicts and pooled
intervals are those of :func:`vmflib.chapters.claim_a.compute` and
:func:`vmflib.chapters.claim_b.compute` (the rules of :mod:`vmflib.analysis`), and, when the
build has the run group of chapter du_drivers, the two agreement verdicts of
:func:`vmflib.chapters.du_drivers.compute`, with that chapter's parameters (its notebook's
defaults, overridden by the profile's ``chapters.du_drivers``).

The build's cost is read from the results folder ``<out>`` (the parent of ``results_dir``):
the ``seconds`` of the job records ``<out>/cache/<job>.json`` (papermill's wall time of the
job's last execution) of the runs and of the chapters that read no runs, and the ``seconds``
of every run folder's ``meta.json`` under ``<out>/runs`` and ``<out>/groups`` (training and
measuring, inside the run's job) (:func:`cost_numbers`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import analysis
from ..plots import model_style
from . import ChapterResult, claim_a, claim_b

#: The run group (under ``<out>/groups``) and the chapter whose verdicts the summary quotes.
DU_GROUP = "du_drivers"


def compute(results_dir, profile: str | None = None, chapters: dict | None = None) -> ChapterResult:
    """The summary of the finished runs under ``results_dir`` (``<out>/runs``).

    ``chapters`` holds the profile's chapter parameter overrides (``{chapter: {name:
    value}}``, as :mod:`vmflib.reproduce` passes them); the du_drivers chapter's are applied
    over its notebook's defaults. Tables and numbers: :func:`assess`, :func:`du_numbers`,
    :func:`cost_numbers`, and profile (the name as given).
    """
    out = Path(results_dir).parent
    res = assess(claim_a.compute(results_dir), claim_b.compute(results_dir))
    res.add(**du_numbers(out / "groups" / DU_GROUP, chapters))
    res.add(**cost_numbers(out), profile=str(profile))
    return res


def assess(a: ChapterResult, b: ChapterResult) -> ChapterResult:
    """The summary of a Claim A and a Claim B chapter result.

    Tables: ``a_runs`` (Claim A's measurements, for :func:`vmflib.plots.kappa_curves`),
    ``b_runs`` (Claim B's, with du, for :func:`vmflib.plots.claim_b_scatter`) and
    ``glance`` (:func:`glance_table`). Numbers: a_n_supported, a_n_models, b_n_supported,
    b_n_models (as in the claims' chapters), a_verdicts, b_verdicts (per model, as text:
    'FNN: supported; CNN-BN: mixed') and b_interval_of (what Claim B's pooled interval is
    of: :func:`claim_b_intervals`).
    """
    a_v, b_v = a.tables["verdicts"], b.tables["verdicts"]
    b_est, b_what = claim_b_intervals(b_v, b.tables["shares"])
    res = ChapterResult(
        tables=dict(
            a_runs=a.tables["runs"],
            b_runs=b.tables["runs"],
            glance=glance_table(a_v, b_v, b_est),
        )
    )
    res.add(**{k: a.numbers[k] for k in ("a_n_supported", "a_n_models")})
    res.add(**{k: b.numbers[k] for k in ("b_n_supported", "b_n_models")})
    res.add(a_verdicts=verdict_text(a_v), b_verdicts=verdict_text(b_v), b_interval_of=b_what)
    return res


def verdict_text(verdicts: pd.DataFrame) -> str:
    """'FNN: supported; CNN-BN: mixed' from a verdicts table (columns model, verdict)."""
    return "; ".join(
        f"{model_style(m).label}: {v}" for m, v in zip(verdicts["model"], verdicts["verdict"])
    )


def _estimate(mean: float, lo: float, hi: float) -> str:
    """'-0.93 [-0.99, -0.71]', or '-0.93 (no interval)' when the interval is undefined."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{mean:.2f} (no interval)"
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def claim_b_intervals(verdicts: pd.DataFrame, shares: pd.DataFrame) -> tuple[list[str], str]:
    """(per model of ``verdicts``: the pooled estimate Claim B's verdict rests on, with its
    interval, as text; what that estimate is). With shares
    (:func:`vmflib.analysis.pooled_shares`): the direction share minus the norm share
    (:func:`vmflib.analysis.share_verdict`); without: |r(GS, DU)| - |r(GS, GNS)|
    (:func:`vmflib.analysis.correlation_verdict`)."""
    if shares.empty:
        texts = [f"{d:.2f} {ci}" for d, ci in zip(verdicts["|r_DU|-|r_GNS|"], verdicts["diff CI"])]
        return texts, "the pooled difference |r(GS, DU)| − |r(GS, GNS)|"
    rows = shares[shares["term"] == "dir_minus_norm"].set_index("model")
    texts = [_estimate(*rows.loc[m, ["share", "lo", "hi"]]) for m in verdicts["model"]]
    return texts, (
        "the pooled share of directions minus the share of norms in the variance of"
        " log(1 + (m − 1)/m GS²)"
    )


def glance_table(a_v: pd.DataFrame, b_v: pd.DataFrame, b_est: list[str]) -> pd.DataFrame:
    """One row per model (Claim A's order; a model missing from one claim shows '–'):
    label, seeds, Claim A's pooled rho(epoch, kappa) with its interval and verdict, Claim B's
    pooled estimate (``b_est``) and verdict."""
    level = f"{analysis.CI_LEVEL:.0%} CI"
    a = pd.DataFrame(
        {
            "model": a_v["model"],
            "seeds": a_v["seeds"],
            f"A: pooled ρ(epoch, κ) [{level}]": [
                _estimate(*t) for t in zip(a_v["rho(epoch, kappa)"], a_v["ci_lo"], a_v["ci_hi"])
            ],
            "A: verdict": a_v["verdict"],
        }
    )
    b = pd.DataFrame(
        {"model": b_v["model"], f"B: pooled [{level}]": b_est, "B: verdict": b_v["verdict"]}
    )
    models = list(dict.fromkeys([*a["model"], *b["model"]]))
    table = a.set_index("model").join(b.set_index("model"), how="outer").reindex(models)
    table = table.fillna("–").reset_index()
    table["model"] = [model_style(m).label for m in table["model"]]
    return table


# --- the du_drivers grid -------------------------------------------------------------------------
def du_parameters(chapters: dict | None) -> dict:
    """The keyword arguments of :func:`vmflib.chapters.du_drivers.compute` that chapter
    du_drivers runs with: its notebook's defaults < ``chapters["du_drivers"]``."""
    from ..book import NOTEBOOKS, notebook_defaults

    defaults = notebook_defaults(NOTEBOOKS / f"{DU_GROUP}.ipynb")
    params = {name: value for name, (value, _) in defaults.items()}
    params.update((chapters or {}).get(DU_GROUP) or {})
    return {k: v for k, v in params.items() if k not in ("results_dir", "profile")}


def du_numbers(group_dir: Path, chapters: dict | None) -> dict:
    """du_sentence: the two agreement verdicts of :func:`vmflib.chapters.du_drivers.compute`
    on the runs under ``group_dir`` with :func:`du_parameters` of ``chapters``, as one
    sentence, or why there are none."""
    from . import du_drivers

    if not Path(group_dir).is_dir():
        return dict(du_sentence="This build has no runs of the batch-size and learning-rate grid.")
    try:
        n = du_drivers.compute(group_dir, **du_parameters(chapters)).numbers
    except (RuntimeError, ValueError) as e:
        return dict(du_sentence=f"The grid's verdicts are not available in this build ({e}).")
    return dict(
        du_sentence=(
            f"On the grid of {n['grid_n_runs']} runs, the toy model's prediction for the batch"
            f" size {n['b_agreement']} (log-log slope of κ on b: measured"
            f" {n['b_slope_measured']:.2f}, predicted {n['b_slope_toy']:.2f}), and its"
            f" prediction for the learning rate {n['lr_agreement']} (slope of the late κ on"
            f" the learning rate: measured {n['lr_slope_measured']:.2f}, predicted"
            f" {n['lr_slope_toy']:.2f})."
        )
    )


# --- what the build cost -------------------------------------------------------------------------
def cost_numbers(out: Path) -> dict:
    """The build's seconds from the results folder ``out``.

    job_seconds, n_jobs: sum and count of ``seconds`` over the job records
    ``out/cache/<job>.json`` of the run folders under ``out/runs`` and ``out/groups/*`` and
    of the chapters that read no runs (kind "chapter" in :data:`vmflib.book.CHAPTERS`): the
    jobs that have finished before any results chapter, this one included, starts
    (:func:`vmflib.reproduce.batch.run_jobs` runs those in a second phase). Each record holds the
    papermill wall time of the job's last execution; a cached job keeps the time it took
    when it ran. run_seconds, n_runs: sum and count of ``seconds`` over the ``meta.json`` of
    those run folders (training and measuring; part of the run jobs' seconds).
    """
    from ..book import CHAPTERS
    from ..results import read_meta

    metas = {
        p.parent.name: read_meta(p.parent)
        for sub in ("runs", "groups")
        for p in sorted((Path(out) / sub).rglob("meta.json"))
    }
    jobs = [*metas, *(name for name, c in CHAPTERS.items() if c.kind == "chapter")]
    records = [Path(out) / "cache" / f"{job}.json" for job in jobs]
    records = [json.loads(p.read_text()) for p in records if p.exists()]
    return dict(
        job_seconds=float(sum(r.get("seconds", 0.0) for r in records)),
        n_jobs=len(records),
        run_seconds=float(sum(m.get("seconds", 0.0) for m in metas.values())),
        n_runs=len(metas),
    )
