"""vmflib: directional statistics of SGD minibatch gradients.

Reproduces and extends Lee, Cho & Kang, "Directional Analysis of Stochastic Gradient
Descent via von Mises-Fisher Distributions in Deep Learning" (arXiv:1810.00150).

The names in ``__all__`` are the public API: ``vmflib.kappa_mle`` is
``vmflib.vmf.kappa_mle``, and so on. Each is imported from its submodule (``_HOMES``) on
first use (PEP 562), so ``import vmflib`` itself imports neither torch nor any submodule.
The submodules (``vmflib.vmf``, ``vmflib.sampling``, ...) are public too.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_HOMES = {
    # minibatch gradients and their directional statistics
    "gradient_stats": "sampling",
    "minibatch_gradients": "sampling",
    "sample_indices": "sampling",
    "DirectionalStats": "stats",
    "GradientStats": "stats",
    # von Mises-Fisher maths
    "bessel_ratio": "vmf",
    "kappa_banerjee": "vmf",
    "kappa_mle": "vmf",
    "rayleigh_pvalue": "vmf",
    "uniform_kappa_quantiles": "vmf",
    # data and models
    "load_dataset": "data",
    "MODELS": "models",
    "build_model": "models",
    # training runs and their results
    "RunConfig": "train",
    "run": "train",
    "load_run": "results",
    "load_runs": "results",
}

#: In the groups above: what notebooks and users call.
__all__ = list(_HOMES)


def __getattr__(name: str):
    """The public name from its home submodule, imported on first use and then cached."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
