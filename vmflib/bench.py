"""Benchmarks: side-by-side measurements printed as one table from one process run.

Speed and accuracy targets are judged here, never by timed tests: the machine is noisy, so
every ratio compares methods measured in the same run.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from . import vmf
from .reference import bessel_ratio_mp, kappa_mle_mp

#: kappa grid, relative to d, on which bessel_ratio and kappa_mle are judged per d.
BENCH_KAPPA_OVER_D = (1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 30.0, 1e3)
BENCH_DIMS = (10, 50, 66, 68, 70, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
#: SciPy's fit needs the data matrix; past this many entries it is skipped.
SCIPY_MAX_ENTRIES = 2e7


def _best_time(fn, repeat: int = 5) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_vmf(dims=BENCH_DIMS, n_samples: int = 100, seed: int = 0, scipy_max_entries: float = SCIPY_MAX_ENTRIES) -> pd.DataFrame:
    """Accuracy and speed of the kappa estimators against mpmath and SciPy, per d.

    Per d, on the kappa grid d * BENCH_KAPPA_OVER_D: the largest relative error of
    bessel_ratio against the 40-digit reference, and of kappa_mle and kappa_banerjee against
    the 40-digit root of A_d(kappa) = rbar for the same float64 rbar; the time of one
    vectorised kappa_mle call over the grid. Then n_samples vMF draws with kappa = d / 2 are
    fitted by SciPy's ``vonmises_fisher.fit`` and by ``vmf.fit`` (same data): both kappas
    and both times.
    """
    from scipy.stats import vonmises_fisher

    rows = []
    rng = np.random.default_rng(seed)
    for d in dims:
        kappas = np.array([d * f for f in BENCH_KAPPA_OVER_D])
        a_ref = [bessel_ratio_mp(d, k) for k in kappas]
        a_ours = vmf.bessel_ratio(d, kappas)
        err_a = max(float(abs((a - r) / r)) for a, r in zip(a_ours, a_ref))
        rbar = np.array([float(r) for r in a_ref])
        keep = rbar < 1.0  # rbar rounds to 1 at the far end of the grid for small d
        k_ref = [kappa_mle_mp(r, d) for r in rbar[keep]]
        k_mle = vmf.kappa_mle(rbar[keep], d)
        k_ban = vmf.kappa_banerjee(rbar[keep], d)
        err_mle = max(float(abs((k - r) / r)) for k, r in zip(k_mle, k_ref))
        err_ban = max(float(abs((k - r) / r)) for k, r in zip(k_ban, k_ref))
        t_mle = _best_time(lambda: vmf.kappa_mle(rbar[keep], d)) / keep.sum()
        row = {
            "d": d,
            "grid": int(keep.sum()),
            "A_d rel err": err_a,
            "kappa_mle rel err": err_mle,
            "banerjee rel err": err_ban,
            "kappa_mle us/value": 1e6 * t_mle,
        }
        true_kappa = d / 2.0
        if n_samples * d <= scipy_max_entries:
            mu = np.zeros(d)
            mu[0] = 1.0
            X = vmf.sample(mu, true_kappa, n_samples, rng=rng)
            t0 = time.perf_counter()
            ours = vmf.fit(X)
            t_ours = time.perf_counter() - t0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                try:
                    _, k_scipy = vonmises_fisher.fit(X)
                except Exception as e:  # pragma: no cover - depends on SciPy
                    k_scipy = float("nan")
                    row["scipy error"] = type(e).__name__
                t_scipy = time.perf_counter() - t0
            row.update({
                "true kappa": true_kappa,
                "fit kappa (ours)": ours.kappa_raw,
                "fit kappa (scipy)": float(k_scipy),
                "scipy/ours": float(k_scipy) / ours.kappa_raw,
                "fit ms (ours)": 1e3 * t_ours,
                "fit ms (scipy)": 1e3 * t_scipy,
            })
        else:
            row.update({"true kappa": true_kappa, "fit kappa (scipy)": "skipped (n*d too large)"})
        rows.append(row)
    return pd.DataFrame(rows)
