"""A computable toy model: least squares, where the law of minibatch gradients is known.

The theory chapter ("Why directional uniformity grows") needs a model in which every
quantity of the book's methods chapter (GS, GNS, DU) can be computed, not only measured.
Linear least squares is the cleanest choice: with N examples (x_i, y_i), x_i in R^d, and

    L(w) = (1/N) sum_i l_i(w),   l_i(w) = (x_i . w - y_i)^2 / 2,

the per-example gradients h_i(w) = x_i (x_i . w - y_i) are explicit ([N, d]), the full
gradient is grad L(w) = (1/N) X^T (X w - y), and the least-squares minimiser w_hat has
grad L(w_hat) = 0 *exactly* while the residuals, and so the per-example gradients, stay
nonzero. That is the mechanism of Claim A in its purest form.

Exact minibatch moments (:func:`minibatch_moments`). A minibatch B is b distinct indices
drawn uniformly without replacement and g_B = (1/b) sum_{i in B} h_i. With the per-example
covariance Sigma = (1/N) sum_i (h_i - grad L)(h_i - grad L)^T (divisor N), sampling theory
(Cochran 1977, Thm 2.2; the finite-population correction) gives

    E g_B = grad L,   Cov g_B = C_b = (N - b) / (b (N - 1)) * Sigma,
    E |g_B|^2 = |grad L|^2 + (N - b) / (N - 1) * tr(Sigma) / b.

Directions (:func:`mean_direction_sq`, :func:`expected_kappa`). The unit vector u = g_B/|g_B|
has no closed-form mean, but in high dimension |g_B|^2 concentrates at q0 = E|g_B|^2, so to
leading order E u = grad L / sqrt(q0) and

    |E u|^2 ~ rho = |grad L|^2 / (|grad L|^2 + tr C_b)           (order 1),

with an O(1/d_eff) correction from a second-order expansion of |g_B|^{-1} for Gaussian
g_B (order 2, the default). For m independent minibatches E[Rbar^2] = 1/m + (1 - 1/m) |E u|^2
exactly, which gives the expected raw kappa A_d^{-1}(sqrt(E Rbar^2)) (Rbar concentrates in
high d), and the population kappa A_d^{-1}(|E u|) -- the kappa of the vMF law closest in
Kullback-Leibler divergence to the law of u, which the debiased estimator targets.
The approximation needs g_B to be close to Gaussian: on a d = 100 problem of this module it
matches a Monte Carlo estimate of |E u|^2 to about 2 % for b >= 10 but is 15-20 % off for
b = 2, where u weights the few per-example gradients by 1/|g_B| and E u need not vanish
even where grad L does.

SNR and Rbar (:func:`snr_from_rbar`). If all m gradients have the same norm, the SNR of
Shwartz-Ziv & Tishby (2017) with the ddof = 1 variance is *exactly*
sqrt((m - 1)/m) Rbar / sqrt(1 - Rbar^2); the population version is SNR = |E u| / sqrt(1 - |E u|^2)
under the same assumption, and sqrt(rho / (1 - rho)) = |grad L| / sqrt(tr C_b) in general.

:func:`sgd_trajectory` runs plain SGD on the problem and measures along the way with
:func:`vmflib.sampling.gradient_stats` (the same code that measures the deep networks),
next to the analytic predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import vmf


# --- the problem ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Problem:
    """A least-squares problem with explicit per-example gradients.

    Attributes:
        X: [N, d] inputs. y: [N] targets.
        w_star: [d] weights that generated y (y = X w_star + noise).
        noise: standard deviation of the label noise.
        seed: the seed it was made with.
    """

    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    w_star: np.ndarray = field(repr=False)
    noise: float
    seed: int

    @property
    def n(self) -> int:
        """N, the number of examples."""
        return self.X.shape[0]

    @property
    def d(self) -> int:
        """d, the number of parameters."""
        return self.X.shape[1]

    def _w(self, w) -> np.ndarray:
        w = np.asarray(w, dtype=float)
        if w.shape != (self.d,):
            raise ValueError(f"w must have shape ({self.d},), got {w.shape}")
        return w

    def residuals(self, w) -> np.ndarray:
        """[N] residuals r_i = x_i . w - y_i."""
        return self.X @ self._w(w) - self.y

    def loss(self, w) -> float:
        """L(w) = mean_i (x_i . w - y_i)^2 / 2."""
        r = self.residuals(w)
        return float(0.5 * np.mean(r * r))

    def full_gradient(self, w) -> np.ndarray:
        """[d] grad L(w) = X^T (X w - y) / N."""
        return self.X.T @ self.residuals(w) / self.n

    def per_example_gradients(self, w) -> np.ndarray:
        """[N, d] rows h_i(w) = x_i (x_i . w - y_i), the gradients of the per-example losses."""
        return self.X * self.residuals(w)[:, None]

    def minibatch_gradients(self, w, indices) -> np.ndarray:
        """[m, d] gradients of the mean loss over each minibatch; ``indices`` is [m, b]."""
        idx = np.asarray(indices)
        if idx.ndim != 2:
            raise ValueError(f"indices must be 2-D with shape (m, b), got shape {idx.shape}")
        Xb = self.X[idx]  # [m, b, d]
        r = Xb @ self._w(w) - self.y[idx]  # [m, b]
        return (Xb * r[..., None]).mean(axis=1)

    def minimizer(self) -> np.ndarray:
        """[d] the least-squares solution w_hat (grad L(w_hat) = 0)."""
        return np.linalg.lstsq(self.X, self.y, rcond=None)[0]

    def torch_model(self, w=None) -> torch.nn.Module:
        """A float64 ``nn.Linear(d, 1, bias=False)`` with weight w (default 0), for
        :mod:`vmflib.sampling`; use it with :func:`squared_loss`."""
        model = torch.nn.Linear(self.d, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(
                torch.as_tensor(self._w(np.zeros(self.d) if w is None else w)).reshape(1, -1)
            )
        return model

    def torch_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs [N, d], targets [N]) as float64 tensors."""
        return torch.as_tensor(self.X), torch.as_tensor(self.y)


def squared_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of (output - target)^2 / 2 over a batch (the loss of :class:`Problem`)."""
    return 0.5 * ((outputs.reshape(-1) - targets) ** 2).mean()


def make_problem(
    n: int = 2000, d: int = 200, *, noise: float = 1.0, cond: float = 10.0, seed: int = 0
) -> Problem:
    """A synthetic least-squares problem.

    x_i ~ N(0, diag(s)) with s geometric from 1 down to 1/cond (so the Hessian has
    condition number about ``cond``), w_star uniform on the unit sphere scaled to norm 1,
    y_i = x_i . w_star + noise * eps_i, eps_i ~ N(0, 1).

    Args:
        n: N, the number of examples (n > d for a unique, non-interpolating minimiser).
        d: the dimension of w.
        noise: label-noise standard deviation (> 0 keeps per-example gradients nonzero at
            the minimiser).
        cond: ratio of the largest to the smallest input variance (>= 1).
        seed: seed of the numpy Generator; the same seed gives the same problem.
    """
    if n < 2 or d < 2:
        raise ValueError(f"need n >= 2 examples and d >= 2 dimensions, got n={n}, d={d}")
    if cond < 1:
        raise ValueError(f"cond must be >= 1, got {cond}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(np.geomspace(1.0, 1.0 / cond, d))
    X = rng.standard_normal((n, d)) * scale
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    y = X @ w_star + noise * rng.standard_normal(n)
    return Problem(X=X, y=y, w_star=w_star, noise=float(noise), seed=int(seed))


# --- exact minibatch moments ---------------------------------------------------------------
def finite_population_factor(n: int, b: int) -> float:
    """(N - b) / (N - 1): variance factor of a mean of b draws without replacement from N."""
    if not 1 <= b <= n:
        raise ValueError(f"batch size b must be in [1, N={n}], got {b}")
    return (n - b) / (n - 1) if n > 1 else 0.0


@dataclass(frozen=True)
class MinibatchMoments:
    """First two moments of the minibatch gradient g_B at one w (exact).

    Attributes:
        grad: [d] grad L(w) = E g_B.
        sigma: [d, d] per-example covariance Sigma = (1/N) sum (h_i - grad)(h_i - grad)^T.
        cov: [d, d] Cov g_B = (N - b) / (b (N - 1)) Sigma.
        b, n: batch size and number of examples. fpc: (N - b) / (N - 1).
        grad_norm2: |grad L|^2. trace_sigma: tr Sigma. trace_cov: tr Cov g_B.
        mean_sq_norm: E |g_B|^2 = |grad L|^2 + fpc tr(Sigma) / b.
        rho: |grad L|^2 / E |g_B|^2, the leading-order |E u|^2.
    """

    grad: np.ndarray = field(repr=False)
    sigma: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    b: int
    n: int
    fpc: float
    grad_norm2: float
    trace_sigma: float
    trace_cov: float
    mean_sq_norm: float
    rho: float


def minibatch_moments(problem: Problem, w, b: int) -> MinibatchMoments:
    """Exact mean and covariance of g_B for minibatches of b examples drawn without replacement.

    Args:
        problem: the toy problem. w: [d] weights. b: batch size, 1 <= b <= N.

    Returns:
        :class:`MinibatchMoments` (Cochran 1977, Thm 2.2: Cov = (N - b)/(b (N - 1)) Sigma).
    """
    b = int(b)
    fpc = finite_population_factor(problem.n, b)
    H = problem.per_example_gradients(w)
    g = H.mean(axis=0)
    D = H - g
    sigma = D.T @ D / problem.n
    cov = sigma * (fpc / b)
    g2 = float(g @ g)
    tr_sigma = float(np.einsum("ij,ij->", D, D) / problem.n)
    tr_cov = tr_sigma * fpc / b
    q0 = g2 + tr_cov
    return MinibatchMoments(
        grad=g,
        sigma=sigma,
        cov=cov,
        b=b,
        n=problem.n,
        fpc=fpc,
        grad_norm2=g2,
        trace_sigma=tr_sigma,
        trace_cov=tr_cov,
        mean_sq_norm=q0,
        rho=g2 / q0 if q0 > 0 else 0.0,
    )


# --- directions ------------------------------------------------------------------------------
def mean_direction_sq(mean, cov, *, order: int = 2) -> float:
    """Approximate |E u|^2 for u = x / |x|, x ~ N(mean, cov) in R^d.

    With q0 = |mean|^2 + tr cov and D = |x|^2 - q0, expanding |x|^{-1} = q0^{-1/2}
    (1 - D/(2 q0) + 3 D^2/(8 q0^2) - ...) and using the Gaussian moments E[x D] = 2 cov mean,
    E[D^2] = 2 tr(cov^2) + 4 mean^T cov mean gives

        order 1:  E u = mean / sqrt(q0)                                  (|E u|^2 = rho)
        order 2:  E u = (mean (1 + 3 E[D^2] / (8 q0^2)) - cov mean / q0) / sqrt(q0),

    dropping terms of relative size O(1/d_eff^2), d_eff = (tr cov)^2 / tr(cov^2).

    Args:
        mean: [d]. cov: [d, d] symmetric positive semi-definite. order: 1 or 2.
    """
    mean = np.asarray(mean, dtype=float)
    cov = np.asarray(cov, dtype=float)
    if mean.ndim != 1 or cov.shape != (mean.size, mean.size):
        raise ValueError(f"mean must be [d] and cov [d, d], got {mean.shape} and {cov.shape}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    g2 = float(mean @ mean)
    q0 = g2 + float(np.trace(cov))
    if q0 <= 0 or g2 == 0:
        return 0.0
    if order == 1:
        return g2 / q0
    cg = cov @ mean
    var_q = 2.0 * float(np.einsum("ij,ji->", cov, cov)) + 4.0 * float(mean @ cg)
    eu = (mean * (1.0 + 3.0 * var_q / (8.0 * q0 * q0)) - cg / q0) / np.sqrt(q0)
    return float(min(eu @ eu, 1.0))


def kappa_of_rbar(rbar, d):
    """A_d^{-1}(rbar) for rbar in [0, 1): 0 at rbar = 0, inf at 1 (vectorised)."""
    r = np.asarray(rbar, dtype=float)
    return vmf.kappa_from_resultant(r * r, 1.0, d)


def snr_from_rbar(rbar, m: int | None = None):
    """SNR implied by the mean resultant length when all gradient norms are equal.

    Population (m None): |E u| / sqrt(1 - |E u|^2). Sample of m gradients with the ddof = 1
    variance (the book's SNR): sqrt((m - 1)/m) Rbar / sqrt(1 - Rbar^2), an exact identity.
    """
    r = np.asarray(rbar, dtype=float)
    out = r / np.sqrt((1.0 - r) * (1.0 + r))
    if m is not None:
        out = out * np.sqrt((m - 1.0) / m)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class KappaPrediction:
    """Analytic directional statistics of m minibatch gradients at one w.

    Attributes:
        b, m, d: batch size, number of minibatches, dimension.
        rho: |grad L|^2 / E|g_B|^2 (order-1 |E u|^2).
        mean_dir_sq: |E u|^2 at the requested order.
        rbar2: E[Rbar^2] = 1/m + (1 - 1/m) mean_dir_sq.
        kappa_population: A_d^{-1}(|E u|), the target of the debiased estimator.
        kappa_raw: A_d^{-1}(sqrt(E[Rbar^2])), the expected raw estimate (plug-in).
        snr_population: |grad L| / sqrt(tr Cov g_B).
        snr_expected: sqrt(E|gbar|^2 / tr Cov g_B) = sqrt((|grad L|^2 + tr Cov/m) / tr Cov),
            the plug-in expectation of the sample SNR of m gradients.
        moments: the :class:`MinibatchMoments` it was computed from.
    """

    b: int
    m: int
    d: int
    rho: float
    mean_dir_sq: float
    rbar2: float
    kappa_population: float
    kappa_raw: float
    snr_population: float
    snr_expected: float
    moments: MinibatchMoments = field(repr=False)


def expected_kappa(problem: Problem, w, b: int, m: int, *, order: int = 2) -> KappaPrediction:
    """Analytic (Gaussian, large-d) prediction of raw and population kappa of m directions.

    Args:
        problem: the toy problem. w: [d] weights. b: batch size. m: number of minibatches
            (>= 2). order: 1 (|E u|^2 = rho) or 2 (with the O(1/d) correction).
    """
    if m < 2:
        raise ValueError(f"m (number of minibatches) must be >= 2, got {m}")
    mom = minibatch_moments(problem, w, b)
    mds = mean_direction_sq(mom.grad, mom.cov, order=order)
    rbar2 = 1.0 / m + (1.0 - 1.0 / m) * mds
    tr = mom.trace_cov
    return KappaPrediction(
        b=int(b),
        m=int(m),
        d=problem.d,
        rho=mom.rho,
        mean_dir_sq=mds,
        rbar2=rbar2,
        kappa_population=float(kappa_of_rbar(np.sqrt(mds), problem.d)),
        kappa_raw=float(kappa_of_rbar(np.sqrt(rbar2), problem.d)),
        snr_population=float(np.sqrt(mom.grad_norm2 / tr)) if tr > 0 else np.inf,
        snr_expected=float(np.sqrt((mom.grad_norm2 + tr / m) / tr)) if tr > 0 else np.inf,
        moments=mom,
    )


# --- SGD along which we measure --------------------------------------------------------------
def measurement_schedule(steps: int, measure_every: int | None, measure_at) -> set[int]:
    """The steps to measure at: 0, measure_every, 2 measure_every, ..., and ``steps``; or the
    steps of ``measure_at`` (exactly one of the two is given), checked to lie in [0, steps]."""
    if steps < 0:
        raise ValueError(f"need steps >= 0, got {steps}")
    if (measure_every is None) == (measure_at is None):
        raise ValueError(
            "give exactly one of measure_every (an interval) and measure_at (a list of steps)"
        )
    if measure_at is None:
        if measure_every < 1:
            raise ValueError(f"measure_every must be >= 1, got {measure_every}")
        return set(range(0, steps + 1, int(measure_every))) | {steps}
    schedule = {int(t) for t in measure_at}
    if not schedule or min(schedule) < 0 or max(schedule) > steps:
        raise ValueError(
            f"measure_at must be a nonempty list of steps in [0, {steps}], "
            f"got {sorted(schedule)[:5]}..."
        )
    return schedule


def learning_rate(t: int, lr: float, lr_decay_steps: float | None) -> float:
    """lr_t = lr for a constant rate (lr_decay_steps None), else lr / (1 + t / lr_decay_steps)."""
    return lr if lr_decay_steps is None else lr / (1.0 + t / lr_decay_steps)


def measure(problem: Problem, model, w, *, b: int, m: int, generator, order: int = 2) -> dict:
    """GS, GNS and DU of m fresh minibatch gradients of size b at w, measured by
    :func:`vmflib.sampling.gradient_stats` (``generator`` draws the minibatches), next to
    :func:`expected_kappa` at the same w. ``model`` is ``problem.torch_model()``; its weight
    is set to w. Returns one row of :func:`sgd_trajectory` without step and lr_t."""
    from .sampling import gradient_stats

    inputs, targets = problem.torch_data()
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(w).reshape(1, -1))
    st = gradient_stats(
        model,
        squared_loss,
        inputs,
        targets,
        batch_size=b,
        num_batches=m,
        generator=generator,
        per_layer=False,
    ).all
    pred = expected_kappa(problem, w, b, m, order=order)
    measured = ["rbar", "rbar_debiased", "kappa_raw", "kappa_debiased", "kappa_se", "null_lo"]
    measured += ["null_median", "null_hi", "rayleigh_p", "snr", "gs", "gns", "mean_norm"]
    return {
        "loss": problem.loss(w),
        "grad_norm": np.sqrt(pred.moments.grad_norm2),
        "trace_cov": pred.moments.trace_cov,
        "rho": pred.rho,
        "mean_dir_sq": pred.mean_dir_sq,
        **{name: getattr(st, name) for name in measured},
        "kappa_raw_expected": pred.kappa_raw,
        "kappa_population": pred.kappa_population,
        "rbar_expected": np.sqrt(pred.rbar2),
        "snr_population": pred.snr_population,
        "snr_expected": pred.snr_expected,
    }


def sgd_step(problem: Problem, w, lr_t: float, b: int, rng) -> np.ndarray:
    """w - lr_t g_B(w) for one minibatch of b examples drawn without replacement by rng."""
    idx = rng.choice(problem.n, size=b, replace=False)
    return w - lr_t * problem.minibatch_gradients(w, idx[None, :])[0]


def sgd_trajectory(
    problem: Problem,
    *,
    lr: float,
    b: int,
    steps: int,
    m: int,
    measure_every: int | None = None,
    measure_at=None,
    seed: int = 0,
    lr_decay_steps: float | None = None,
    w0=None,
    order: int = 2,
):
    """Plain SGD on the toy problem, measured on a schedule next to the analytic predictions.

    SGD (:func:`sgd_step`): w <- w - lr_t g_B(w), B drawn without replacement (numpy
    Generator(seed)), with lr_t of :func:`learning_rate` (with ``lr_decay_steps`` = T,
    lr / (1 + t / T), so that |grad L| keeps falling instead of settling where the constant
    step's noise holds it). At the steps of :func:`measurement_schedule` the weights are
    frozen and :func:`measure` draws m fresh minibatches of size b (torch Generator seeded by
    seed * 1_000_003 + step) and measures GS, GNS and DU exactly as for the deep networks,
    with the predictions of :func:`expected_kappa` at the same w.

    Args:
        problem: the toy problem. lr: learning rate. b: batch size (SGD and measurement).
        steps: number of SGD steps. m: minibatches per measurement (>= 2).
        measure_every: steps between measurements (0 and ``steps`` are always measured).
        measure_at: explicit steps to measure at, in [0, steps] (instead of measure_every).
        seed: controls the SGD and the measurement draws.
        lr_decay_steps: T of the schedule lr / (1 + t / T); None for a constant rate.
        w0: [d] start (default 0). order: order of the |E u|^2 approximation.

    Returns:
        pandas DataFrame, one row per measurement: step, lr_t (the step size in use), loss,
        grad_norm, trace_cov, rho, mean_dir_sq, and measured rbar, rbar_debiased, kappa_raw,
        kappa_debiased, kappa_se, null_lo, null_median, null_hi (quantiles
        ``vmflib.stats.NULL_BAND`` of raw kappa for uniform directions), rayleigh_p, snr, gs,
        gns, mean_norm; predicted kappa_raw_expected, kappa_population, rbar_expected
        (sqrt E[Rbar^2]), snr_population, snr_expected; and lr, lr_decay_steps, b, m, d, seed.
    """
    import pandas as pd

    schedule = measurement_schedule(steps, measure_every, measure_at)
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if lr_decay_steps is not None and lr_decay_steps <= 0:
        raise ValueError(f"lr_decay_steps must be positive or None, got {lr_decay_steps}")
    rng = np.random.default_rng(seed)
    w = np.zeros(problem.d) if w0 is None else problem._w(w0).copy()
    model = problem.torch_model(w)
    rows = []
    for step in range(max(schedule) + 1):
        lr_t = learning_rate(step, lr, lr_decay_steps)
        if step in schedule:
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + step)
            row = measure(problem, model, w, b=b, m=m, generator=gen, order=order)
            rows.append({"step": step, "lr_t": lr_t, **row})
        if step < max(schedule):
            w = sgd_step(problem, w, lr_t, b, rng)
    return pd.DataFrame(rows).assign(
        lr=float(lr), lr_decay_steps=lr_decay_steps, b=int(b), m=int(m), d=problem.d, seed=int(seed)
    )
