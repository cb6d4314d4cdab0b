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
    else:  # pragma: no cover - argparse restricts choices
        raise AssertionError(args.what)
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.float_format", "{:.3g}".format):
        print(title)
        print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmflib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench", help="print side-by-side benchmark tables")
    p.add_argument("what", choices=["vmf"], help="which benchmark")
    p.add_argument("--dims", default=None, help="comma-separated dimensions (vmf), e.g. 10,1e4,1e7")
    p.add_argument("--n", type=int, default=100, help="number of vMF draws fitted (vmf)")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    p.set_defaults(func=_cmd_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
