"""Streaming float64 sums of a set of gradients, and the records of GS, GNS, DU, B_simple and
the split of GS into norms and directions.

:class:`GradientAccumulator` is fed the m minibatch gradients chunk by chunk (rows [c, d]
of c minibatches, or per-tensor slices [c, numel]; any device, any float dtype) and keeps,
in float64, exactly the sums that GS, GNS and DU need:

* the sum of the gradients and the sum of squared deviations per block (Chan et al. 1979
  merge of per-chunk centred sums, so the trace of the covariance has no catastrophic
  cancellation);
* every gradient's norm, overall and per block (m numbers each: GNS is their sd);
* the sum of the unit vectors u_k = g_k / |g_k|, overall and per block;
* the same unit-vector sums per jackknife group (G groups of consecutive rows, G = m for the
  ordinary leave-one-out jackknife when m <= G), for a jackknife standard error of kappa.

Norms, gradient sums and squared deviations are formed in float64, a cache-sized column
piece at a time; the unit-vector sums are one [K, c] @ [c, n] matmul per piece in the
gradients' own dtype (c <= chunk_size terms per entry, weights from the float64 norms),
added into float64 sums. It never holds more than the chunk it is given plus
O((G + 3) d) float64 numbers, so m is unbounded. :meth:`GradientAccumulator.finalize` turns
the sums into one :class:`DirectionalStats` for the whole parameter vector and one per
block, each quantity computed by its function in :mod:`vmflib.quantities`. The noise scale
B_simple also needs the minibatch size b and the number of examples N they are drawn from
(constructor arguments; NaN without them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from . import quantities as q
from .quantities import NULL_BAND  # noqa: F401 (re-exported: the levels of null_lo/median/hi)

#: Default number of jackknife groups (leave-one-out exactly when m <= this).
JACKKNIFE_GROUPS = 16
#: Column piece (entries per row) for float64 work on a chunk: bounds temporary memory and
#: keeps each piece's float64 copy in cache.
COLUMN_BLOCK = 1 << 14


class NonFiniteGradientError(FloatingPointError, ValueError):
    """Some minibatch gradients contain NaN or inf (the rows are listed in the message)."""


# --- records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseStats:
    """GS and GNS of m gradients: how noisy the gradients and their norms are.

    Attributes:
        mean_norm: mean of |g_k| (:func:`~vmflib.quantities.mean_norm`).
        gns: sd(|g_k|) / mean(|g_k|), ddof = 1 (:func:`~vmflib.quantities.gns`).
        snr: |gbar| / sqrt(tr Cov) (:func:`~vmflib.quantities.snr`).
        gs: 1 / snr (:func:`~vmflib.quantities.gs`).
        b_simple: McCandlish et al.'s noise scale tr(Sigma) / |G|^2, estimated from the m
            minibatch gradients of size b drawn from N examples
            (:func:`~vmflib.quantities.b_simple`; NaN when b or N is unknown, b >= N, or the
            unbiased |G|^2 estimate is <= 0).
    """

    mean_norm: float
    gns: float
    snr: float
    gs: float
    b_simple: float


@dataclass(frozen=True)
class VMFStats:
    """DU of the unit vectors u_k: the vMF fit, its null band and the Rayleigh test.

    Attributes:
        rbar, rbar_debiased: raw and debiased mean resultant length of u_k.
        kappa_raw, kappa_debiased: MLE kappa at rbar and at rbar_debiased.
        kappa_se: jackknife standard error of kappa_debiased; kappa_raw_se likewise.
        null_lo, null_median, null_hi: quantiles NULL_BAND of kappa_raw for uniform
            directions (same m, d); rayleigh_p: p-value of uniformity (Rayleigh test).
    """

    rbar: float
    rbar_debiased: float
    kappa_raw: float
    kappa_debiased: float
    kappa_se: float
    kappa_raw_se: float
    null_lo: float
    null_median: float
    null_hi: float
    rayleigh_p: float

    @classmethod
    def undefined(cls) -> VMFStats:
        """No vMF fit: fewer than 2 directions, or d < 2. Every field is NaN."""
        return cls(**{f.name: float("nan") for f in fields(cls)})


@dataclass(frozen=True)
class GSDecomposition:
    """The exact split log(1 + (m-1)/m GS^2) = gs_norm_term + gs_direction_term +
    gs_coupling_term (m the number of gradients GS and GNS are taken over; see
    :mod:`vmflib.quantities`, "GS split exactly into norms, directions and their coupling").

    Attributes:
        rbar_weighted: R_w = |sum_k g_k| / sum_k |g_k|
            (:func:`~vmflib.quantities.rbar_weighted`).
        gs_norm_term: log(1 + (m-1)/m GNS^2) (:func:`~vmflib.quantities.gs_norm_term`).
        gs_direction_term: -2 log rbar (:func:`~vmflib.quantities.gs_direction_term`; NaN
            where rbar is).
        gs_coupling_term: -2 log(rbar_weighted / rbar)
            (:func:`~vmflib.quantities.gs_coupling_term`; NaN where rbar is).
    """

    rbar_weighted: float
    gs_norm_term: float
    gs_direction_term: float
    gs_coupling_term: float


#: Column names of :meth:`DirectionalStats.to_dict`, in order (measurements.csv, layers.csv).
COLUMNS = (
    "name",
    "d",
    "m",
    *(f.name for f in fields(NoiseStats)),
    *(f.name for f in fields(VMFStats)),
    *(f.name for f in fields(GSDecomposition)),
    "num_zero",
)
_RECORDS = {
    "noise": frozenset(f.name for f in fields(NoiseStats)),
    "vmf": frozenset(f.name for f in fields(VMFStats)),
    "decomposition": frozenset(f.name for f in fields(GSDecomposition)),
}


@dataclass(frozen=True)
class DirectionalStats:
    """GS, GNS and DU of m gradients in d dimensions (one block: one layer, or all parameters).

    Every field of ``noise``, ``vmf`` and ``decomposition`` reads as an attribute too
    (``stats.kappa_raw``).

    Attributes:
        name: "all" or the parameter's name.
        d: dimension. m: number of gradients with a direction (nonzero norm).
        noise: GS, GNS and B_simple (:class:`NoiseStats`).
        vmf: DU (:class:`VMFStats`; :meth:`VMFStats.undefined` when m < 2 or d < 2).
        decomposition: GS split into norms and directions (:class:`GSDecomposition`).
        num_zero: gradients with zero norm in this block (no direction; left out of DU).
    """

    name: str
    d: int
    m: int
    noise: NoiseStats
    vmf: VMFStats
    decomposition: GSDecomposition
    num_zero: int = 0

    def __getattr__(self, name):  # gs, kappa_raw, ... from noise, vmf and decomposition
        for record, names in _RECORDS.items():
            if name in names:
                return getattr(object.__getattribute__(self, record), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict:
        """One flat row, keys :data:`COLUMNS` in order."""
        return {
            "name": self.name,
            "d": self.d,
            "m": self.m,
            **asdict(self.noise),
            **asdict(self.vmf),
            **asdict(self.decomposition),
            "num_zero": self.num_zero,
        }


@dataclass
class GradientStats:
    """Result of :func:`vmflib.sampling.gradient_stats`: overall and per-layer statistics.

    ``all`` holds the statistics of the flattened parameter vector; ``layers`` one entry
    per trainable parameter tensor, in ``named_parameters()`` order. ``norms`` are the m
    gradient norms. ``info`` says how they were computed (backend, chunk size, ...).
    """

    all: DirectionalStats
    layers: list[DirectionalStats]
    norms: np.ndarray = field(repr=False)
    info: dict = field(default_factory=dict)

    def __getattr__(self, name):  # gs, gns, kappa_raw, ... straight from ``all``
        if name in COLUMNS:
            return getattr(self.all, name)
        raise AttributeError(name)

    def layer_table(self):
        """Per-layer statistics as a pandas DataFrame (one row per parameter tensor)."""
        import pandas as pd

        return pd.DataFrame([s.to_dict() for s in self.layers])


# --- the accumulator -----------------------------------------------------------------------
class GradientAccumulator:
    """Float64 streaming sums over the rows of gradient chunks.

    Shapes: rows [c, d] are the gradients of c minibatches (parameters flattened in order);
    block i is the column slice [offsets[i], offsets[i + 1]) of width sizes[i] (one
    parameter tensor), fed either inside the rows or as its own [c, sizes[i]] slice.

    Sums (float64, on ``device``): ``grad_sum`` [d] sum_k g_k; ``sq_dev`` [B] per block
    sum_k |g_k,i - gbar_i|^2; ``unit_sum`` [d] sum_k u_k; ``layer_unit_sum`` [d] per block
    sum_k g_k,i / |g_k,i| (None unless per_layer); ``group_unit_sum`` and
    ``group_layer_unit_sum`` [G, d] the same per jackknife group (None without jackknife).
    ``norms`` [m] and ``layer_norms`` [m, B]: |g_k| and |g_k,i| (float64 numpy).

    Args:
        sizes: number of entries of each block (parameter tensor), in order; sum = d.
        names: names of the blocks.
        num_rows: m, the total number of rows that will be fed (fixes jackknife groups).
        device: where the float64 sums live (the gradients' device).
        jackknife_groups: G; 0 turns the jackknife off.
        per_layer: also keep per-block unit-vector sums (2x the memory).
        batch_size, num_examples: b and N, when the rows are gradients of minibatches of b
            examples drawn uniformly without replacement from N, independently of each other
            (for B_simple, NaN without them).
    """

    def __init__(
        self,
        sizes,
        names,
        num_rows: int,
        *,
        device="cpu",
        jackknife_groups: int = JACKKNIFE_GROUPS,
        per_layer: bool = True,
        batch_size: int | None = None,
        num_examples: int | None = None,
    ):
        self.sizes = [int(s) for s in sizes]
        self.names = list(names)
        self.d = sum(self.sizes)
        _check_layout(self.sizes, self.names, num_rows)
        self.m = int(num_rows)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self.device = torch.device(device)
        self.per_layer = bool(per_layer)
        self.groups = min(int(jackknife_groups), self.m) if jackknife_groups else 0
        self.draw = {"batch_size": batch_size, "num_examples": num_examples}
        self.seen = 0
        self._allocate()

    def _allocate(self) -> None:
        f64 = dict(dtype=torch.float64, device=self.device)
        per_group = self.groups and self.per_layer
        self.grad_sum = torch.zeros(self.d, **f64)
        self.sq_dev = torch.zeros(len(self.sizes), **f64)
        self.unit_sum = torch.zeros(self.d, **f64)
        self.layer_unit_sum = torch.zeros(self.d, **f64) if self.per_layer else None
        self.group_unit_sum = torch.zeros(self.groups, self.d, **f64) if self.groups else None
        self.group_layer_unit_sum = torch.zeros(self.groups, self.d, **f64) if per_group else None
        self.norms = np.zeros(self.m)
        self.layer_norms = np.zeros((self.m, len(self.sizes)))

    def _column_pieces(self):
        """(block index, start, stop) column pieces of at most COLUMN_BLOCK entries."""
        for i, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:])):
            for s in range(a, b, COLUMN_BLOCK):
                yield i, s, min(b, s + COLUMN_BLOCK)

    def _piece(self, G, i, a, b):
        """Columns [a, b) of the chunk, which lie in block i: [c, b - a]."""
        o = self.offsets[i]
        return G[i][:, a - o : b - o]

    def group_of(self, rows: torch.Tensor) -> torch.Tensor:
        """Jackknife group of each row index: floor(row * G / m) (runs of consecutive rows)."""
        return (rows * self.groups) // self.m

    @torch.no_grad()
    def update(self, G) -> None:
        """Add the next c rows (gradients of minibatches seen, seen + 1, ..., seen + c - 1).

        Args:
            G: rows [c, d] of c minibatch gradients, or the per-tensor slices
                [[c, sizes[0]], [c, sizes[1]], ...] (saves a copy).

        Raises:
            NonFiniteGradientError: a row has NaN or inf entries (nothing is added).
            ValueError: a row is exactly zero, or shapes or the row count do not fit.
        """
        G = self._as_blocks(G)
        c = G[0].shape[0]
        pieces = list(self._column_pieces())
        block_sq, piece_sq, piece_sums = self._square_norms_and_sums(G, pieces)
        self._check_finite(G, block_sq)
        norm, block_norm = block_sq.sum(dim=1).sqrt(), block_sq.sqrt()
        self._check_nonzero(norm)
        self._merge_moments(pieces, piece_sq, piece_sums, c)
        self._add_unit_vectors(G, pieces, norm, block_norm)
        self.norms[self.seen : self.seen + c] = norm.cpu().numpy()
        self.layer_norms[self.seen : self.seen + c] = block_norm.cpu().numpy()
        self.seen += c

    def _as_blocks(self, G) -> list[torch.Tensor]:
        """The chunk as per-block slices [c, sizes[i]] on ``device``, shapes checked."""
        if isinstance(G, torch.Tensor):
            if G.ndim != 2 or G.shape[1] != self.d:
                raise ValueError(f"expected a chunk of shape [c, {self.d}], got {tuple(G.shape)}")
            G = list(torch.split(G, self.sizes, dim=1))
        if len(G) != len(self.sizes) or any(
            g.ndim != 2 or g.shape[1] != s for g, s in zip(G, self.sizes)
        ):
            raise ValueError(
                f"expected {len(self.sizes)} blocks of widths {self.sizes}, "
                f"got shapes {[tuple(g.shape) for g in G]}"
            )
        c = G[0].shape[0]
        if self.seen + c > self.m:
            raise ValueError(f"fed {self.seen + c} rows, but the accumulator was made for {self.m}")
        return [g.to(self.device) for g in G]

    def _square_norms_and_sums(self, G, pieces):
        """Per column piece in float64 (its float64 copy stays in cache): the squared norms
        per block [c, B], and per piece the sum of squares (a 0-dim tensor) and the column
        sums [b - a]."""
        c = G[0].shape[0]
        block_sq = torch.zeros(c, len(self.sizes), dtype=torch.float64, device=self.device)
        piece_sq, piece_sums = [], []
        for i, a, b in pieces:
            p64 = self._piece(G, i, a, b).to(torch.float64)
            sq = torch.linalg.vector_norm(p64, dim=1).square()
            block_sq[:, i] += sq
            piece_sq.append(sq.sum())
            piece_sums.append(p64.sum(dim=0))
        return block_sq, piece_sq, piece_sums

    def _check_finite(self, G, block_sq) -> None:
        """A NaN or inf entry makes its row's squared norm non-finite; such rows are confirmed
        entry by entry (a huge finite row can overflow float64) and reported."""
        if bool(torch.isfinite(block_sq).all()):
            return
        finite = torch.stack([torch.isfinite(g).all(dim=1) for g in G]).all(dim=0)
        if bool(finite.all()):
            raise NonFiniteGradientError(
                "the squared norm of some minibatch gradients overflows float64"
            )
        bad = (self.seen + torch.nonzero(~finite).flatten()).tolist()
        raise NonFiniteGradientError(
            f"non-finite (NaN or inf) entries in the gradients of minibatches {bad[:20]}; "
            "they are not averaged in: fix the model or learning rate, or treat the run as "
            "diverged"
        )

    def _check_nonzero(self, norm) -> None:
        if bool((norm == 0).any()):
            bad = (self.seen + torch.nonzero(norm == 0).flatten()).tolist()
            raise ValueError(
                f"minibatch gradients {bad[:20]} are exactly zero: they have no direction"
            )

    def _merge_moments(self, pieces, piece_sq, piece_sums, c: int) -> None:
        """Add the chunk's c rows to grad_sum and sq_dev: the chunk's centred sum of squares
        sum_k |g_k|^2 - |sum_k g_k|^2 / c, merged with the rows seen so far by Chan et al.
        (1979): + |mean_chunk - mean_seen|^2 seen c / (seen + c)."""
        n_a, n_b = self.seen, c
        for (i, a, b), sq, csum in zip(pieces, piece_sq, piece_sums):
            self.sq_dev[i] += sq - csum @ csum / n_b
            if n_a > 0:
                delta = csum / n_b - self.grad_sum[a:b] / n_a
                self.sq_dev[i] += (delta @ delta) * (n_a * n_b / (n_a + n_b))
            self.grad_sum[a:b] += csum

    def _unit_weights(self, c: int, norm, block_norm):
        """Every unit-vector sum is a weighted sum of the chunk's rows. Returns per block i
        the weights [K, c] in the chunk's dtype: row 0 is 1/|g_k| (global unit vectors),
        then 1/|g_k,i| (per-block unit vectors, 0 for a zero slice) if per_layer, then the
        same two restricted to each jackknife group present (groups are runs of consecutive
        rows, so those present form a range [g0, g1)), and that range."""
        inv = 1.0 / norm
        linv = torch.where(
            block_norm > 0, 1.0 / block_norm.clamp_min(1e-300), torch.zeros_like(block_norm)
        )
        g0 = g1 = 0
        if self.groups:
            grp = self.group_of(torch.arange(self.seen, self.seen + c, device=self.device))
            g0, g1 = int(grp[0]), int(grp[-1]) + 1
            present = torch.arange(g0, g1, device=self.device)
            onehot = (grp[None, :] == present[:, None]).double()  # [g1 - g0, c]

        def weights(i):
            rows = [inv[None]] + ([linv[None, :, i]] if self.per_layer else [])
            if self.groups:
                rows += [onehot * inv] + ([onehot * linv[:, i]] if self.per_layer else [])
            return torch.cat(rows)

        return [weights(i) for i in range(len(self.sizes))], (g0, g1)

    def _add_unit_vectors(self, G, pieces, norm, block_norm) -> None:
        """One matmul W [K, c] @ piece [c, b - a] per column piece, in the chunk's dtype
        (c <= chunk_size terms per entry; the weights from float64 norms); its [K, b - a]
        result is added to the float64 unit-vector sums."""
        W, (g0, g1) = self._unit_weights(G[0].shape[0], norm, block_norm)
        W = [w.to(g.dtype) for w, g in zip(W, G)]
        P = g1 - g0
        for i, a, b in pieces:
            R = (W[i] @ self._piece(G, i, a, b)).to(torch.float64)  # [K, b - a]
            self.unit_sum[a:b] += R[0]
            k = 1
            if self.per_layer:
                self.layer_unit_sum[a:b] += R[1]
                k = 2
            if self.groups:
                self.group_unit_sum[g0:g1, a:b] += R[k : k + P]
                if self.per_layer:
                    self.group_layer_unit_sum[g0:g1, a:b] += R[k + P : k + 2 * P]

    def finalize(self) -> tuple[DirectionalStats, list[DirectionalStats]]:
        """Statistics of all parameters and of each block (empty list if not per_layer)."""
        if self.seen != self.m:
            raise ValueError(f"accumulator expected {self.m} rows, got {self.seen}")
        blocks = [self._total_block()]
        if self.per_layer:
            blocks += [self._layer_block(i) for i in range(len(self.sizes))]
        out = _block_stats(blocks, self.m, **self.draw)
        return out[0], out[1:]

    def _group_rows(self) -> np.ndarray:
        """[m] jackknife group of each row."""
        return (np.arange(self.m) * self.groups) // self.m

    def _total_block(self) -> _Block:
        gbar = self.grad_sum / self.m
        return _Block(
            name="all",
            d=self.d,
            norms=self.norms,
            m=self.m,
            gbar2=float(gbar @ gbar),
            sq_dev=float(self.sq_dev.sum()),
            unit_sum=self.unit_sum,
            group_sums=self.group_unit_sum,
            counts=np.bincount(self._group_rows(), minlength=self.groups) if self.groups else None,
        )

    def _layer_block(self, i: int) -> _Block:
        a, b = self.offsets[i], self.offsets[i + 1]
        norms = self.layer_norms[:, i]
        gbar = self.grad_sum[a:b] / self.m
        counts = None
        if self.groups:
            counts = np.bincount(self._group_rows()[norms > 0], minlength=self.groups)
        return _Block(
            name=self.names[i],
            d=b - a,
            norms=norms,
            m=q.num_directions(norms),
            gbar2=float(gbar @ gbar),
            sq_dev=float(self.sq_dev[i]),
            unit_sum=self.layer_unit_sum[a:b],
            group_sums=self.group_layer_unit_sum[:, a:b] if self.groups else None,
            counts=counts,
            num_zero=q.num_zero(norms),
        )


def _check_layout(sizes: list[int], names: list, num_rows: int) -> None:
    if any(s <= 0 for s in sizes):
        raise ValueError(f"block sizes must be positive, got {sizes}")
    if len(names) != len(sizes):
        raise ValueError(f"{len(names)} names for {len(sizes)} blocks")
    if sum(sizes) < 2:
        raise ValueError(f"need d >= 2 parameters for directions, got d = {sum(sizes)}")
    if num_rows < 2:
        raise ValueError(f"need at least 2 gradients (num_rows), got {num_rows}")


# --- from sums to statistics ---------------------------------------------------------------
@dataclass
class _Block:
    """Float64 sums of one block (all parameters, or one tensor) for :func:`_block_stats`.

    norms: [m_total] norms of the block; m: how many are nonzero (the directions); gbar2:
    |mean gradient|^2; sq_dev: sum of squared deviations; unit_sum: [size] sum of unit
    vectors; group_sums: [G, size] per-group unit-vector sums (None without jackknife);
    counts: [G] directions per group.
    """

    name: str
    d: int
    norms: np.ndarray
    m: int
    gbar2: float
    sq_dev: float
    unit_sum: torch.Tensor
    group_sums: torch.Tensor | None
    counts: np.ndarray | None
    num_zero: int = 0


class _KappaBatch:
    """Resultants (|S|^2, n, d) of many blocks, inverted to kappa by one call of ``solve_fn``
    (:func:`~vmflib.quantities.kappa_raw` or :func:`~vmflib.quantities.kappa_debiased`)."""

    def __init__(self, solve_fn):
        self.solve_fn = solve_fn
        self.s2, self.n, self.d = [], [], []
        self.size = 0

    def add(self, s2, n, d) -> slice:
        """Queue entries; returns where their kappas will be in :meth:`solve`'s result."""
        s2 = np.atleast_1d(np.asarray(s2, dtype=float))
        self.s2.append(s2)
        self.n.append(np.broadcast_to(np.asarray(n, dtype=float), s2.shape))
        self.d.append(np.full(s2.shape, float(d)))
        self.size += s2.size
        return slice(self.size - s2.size, self.size)

    def solve(self) -> np.ndarray:
        if not self.size:
            return np.empty(0)
        cat = np.concatenate
        return self.solve_fn(cat(self.s2), cat(self.n), cat(self.d))


def _block_stats(
    blocks: list[_Block], m_total: int, batch_size=None, num_examples=None
) -> list[DirectionalStats]:
    """GS, GNS, B_simple, DU and the split of GS of each block from its float64 sums (b and
    N: see :class:`GradientAccumulator`)."""
    vmfs = _vmf_stats(blocks)
    out = []
    for bl, v in zip(blocks, vmfs):
        noise = _noise_stats(bl, m_total, batch_size, num_examples)
        out.append(
            DirectionalStats(
                name=bl.name,
                d=bl.d,
                m=bl.m,
                noise=noise,
                vmf=v,
                decomposition=_decomposition(bl, noise, v, m_total),
                num_zero=bl.num_zero,
            )
        )
    return out


def _noise_stats(bl: _Block, m_total: int, batch_size, num_examples) -> NoiseStats:
    """GNS from the block's norms; GS and B_simple from |gbar|^2 and tr Cov over all m_total
    rows."""
    trace_cov = q.trace_covariance(bl.sq_dev, m_total)
    snr = q.snr(bl.gbar2, trace_cov)
    return NoiseStats(
        mean_norm=q.mean_norm(bl.norms),
        gns=q.gns(bl.norms),
        snr=snr,
        gs=q.gs(snr),
        b_simple=q.b_simple(bl.gbar2, trace_cov, m_total, batch_size, num_examples),
    )


def _decomposition(bl: _Block, noise: NoiseStats, v: VMFStats, m_total: int) -> GSDecomposition:
    """The split of GS over all m_total rows (the m of GS and GNS), from the block's GNS,
    mean norm and |gbar|^2 and its Rbar (over the rows with a direction)."""
    r_w = q.rbar_weighted(bl.gbar2, noise.mean_norm)
    return GSDecomposition(
        rbar_weighted=r_w,
        gs_norm_term=q.gs_norm_term(noise.gns, m_total),
        gs_direction_term=q.gs_direction_term(v.rbar),
        gs_coupling_term=q.gs_coupling_term(r_w, v.rbar),
    )


def _vmf_stats(blocks: list[_Block]) -> list[VMFStats]:
    """DU of each block. Every kappa of every block (raw and debiased estimates, their
    jackknife replicates, the null band) comes from one vectorised inversion per estimator,
    and the null band's resultants and the p-values from one call each."""
    raw, deb = _KappaBatch(q.kappa_raw), _KappaBatch(q.kappa_debiased)
    live = [j for j, bl in enumerate(blocks) if bl.m >= 2 and bl.d >= 2]  # with directions
    asks = {j: _ask_kappas(blocks[j], raw, deb) for j in live}
    if live:
        _ask_null_band_and_p([blocks[j] for j in live], [asks[j] for j in live], raw)
    k_raw, k_deb = raw.solve(), deb.solve()
    return [
        _vmf_of(blocks[j], asks[j], k_raw, k_deb) if j in asks else VMFStats.undefined()
        for j in range(len(blocks))
    ]


def _ask_kappas(bl: _Block, raw: _KappaBatch, deb: _KappaBatch) -> dict:
    """Queue the block's raw and debiased kappa and, with >= 2 usable jackknife replicates,
    their leave-a-group-out replicates. Returns |S|^2 and the slices of the answers."""
    s2 = q.resultant_sq(bl.unit_sum)
    ask = {"s2": s2, "raw": raw.add(s2, bl.m, bl.d), "deb": deb.add(s2, bl.m, bl.d)}
    if bl.group_sums is None or bl.group_sums.shape[0] < 2:
        return ask
    loo_s2 = q.leave_group_out_resultants(s2, bl.unit_sum, bl.group_sums)
    loo_n = q.leave_group_out_counts(bl.m, bl.counts)
    ok = q.usable_replicates(loo_n)
    if ok is not None:
        ask["loo_raw"] = raw.add(loo_s2[ok], loo_n[ok], bl.d)
        ask["loo_deb"] = deb.add(loo_s2[ok], loo_n[ok], bl.d)
    return ask


def _ask_null_band_and_p(live: list[_Block], asks: list[dict], raw: _KappaBatch) -> None:
    """Rbar and the Rayleigh p of every live block (one call), and their null bands: the
    null resultants of all blocks in one call, queued for the raw inversion."""
    n = np.array([bl.m for bl in live])
    d = np.array([bl.d for bl in live])
    rbar = q.rbar(np.array([ask["s2"] for ask in asks]), n)
    null_s2 = q.null_band_resultants(n, d)  # [len(NULL_BAND), B]
    pvals = q.rayleigh_p(rbar, n, d)
    for j, ask in enumerate(asks):
        ask["rbar"], ask["p"] = float(rbar[j]), float(pvals[j])
        ask["null"] = raw.add(null_s2[:, j], n[j], d[j])


def _vmf_of(bl: _Block, ask: dict, k_raw: np.ndarray, k_deb: np.ndarray) -> VMFStats:
    """One block's VMFStats from the solved batches."""
    se = se_raw = float("nan")
    if "loo_raw" in ask:
        se = q.jackknife_se(k_deb[ask["loo_deb"]])
        se_raw = q.jackknife_se(k_raw[ask["loo_raw"]])
    lo, med, hi = (float(k) for k in k_raw[ask["null"]])
    return VMFStats(
        rbar=ask["rbar"],
        rbar_debiased=q.rbar_debiased(ask["s2"], bl.m),
        kappa_raw=float(k_raw[ask["raw"]][0]),
        kappa_debiased=float(k_deb[ask["deb"]][0]),
        kappa_se=se,
        kappa_raw_se=se_raw,
        null_lo=lo,
        null_median=med,
        null_hi=hi,
        rayleigh_p=ask["p"],
    )
