"""Tiny inputs shared by the chapter and figure tests: chapter parameters that run in
seconds, and synthetic measurement tables in the format of vmflib.results.load_runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

VMF_PARAMS = dict(
    reps=3,
    seed=0,
    dims=[10, 40],
    ms=[4, 8],
    kappa_over_d=0.5,
    scipy_dims=[3, 70],
    scipy_n=20,
    accuracy_dims=[2, 10, 500],
)
TOY_PARAMS = dict(
    n=80,
    d=6,
    noise=1.0,
    cond=3.0,
    lr=0.05,
    lr_decay_steps=10,
    steps=30,
    n_measure=4,
    m=4,
    batch_sizes=[4, 8, 16],
    mc_minibatches=200,
    seed=1,
)


def run_table(models=("fnn", "cnn_bn"), seeds=(0, 1), terms: bool = True) -> pd.DataFrame:
    """Measurements of tiny synthetic runs: kappa falls with the epoch, GS follows 1/kappa.

    With ``terms``, the split of log(1 + (m-1)/m GS²) too: a direction term that grows as
    kappa falls, and small noise as the norm and coupling terms (their sum is y).
    """
    rows = []
    for model in models:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for step, epoch in enumerate(np.linspace(0, 2, 6)):
                k = 100.0 / (1 + epoch) + seed
                rows.append(
                    dict(
                        run=f"{model}-{seed}",
                        model=model,
                        seed=seed,
                        step=step,
                        epoch=epoch,
                        kappa_raw=k + 40,
                        kappa_debiased=k,
                        null_lo=30.0,
                        null_median=40.0,
                        null_hi=50.0,
                        rayleigh_p=0.01,
                        test_acc=0.5,
                        gs=(k + 40) ** -0.5,
                        gns=rng.uniform(0.1, 0.2),
                    )
                )
                if terms:
                    rows[-1].update(
                        gs_direction_term=np.log(140.0 / (k + 40)),
                        gs_norm_term=0.01 * rng.standard_normal(),
                        gs_coupling_term=0.005 * rng.standard_normal(),
                    )
    return pd.DataFrame(rows)


def layer_table() -> pd.DataFrame:
    """The rows of :func:`run_table` once per parameter tensor (columns layer, d added)."""
    runs = run_table()
    parts = [runs.assign(layer=name, d=d) for name, d in (("fc1.weight", 64), ("fc1.bias", 8))]
    return pd.concat(parts, ignore_index=True)
