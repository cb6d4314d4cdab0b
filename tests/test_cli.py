"""The command line: `python -m vmflib bench vmf` prints one table and can write it."""

import pandas as pd
import pytest

from vmflib.__main__ import main


def test_bench_vmf_table(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["bench", "vmf", "--dims", "10,1e4,1e7", "--n", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kappa_mle rel err" in printed and "fit kappa (scipy)" in printed
    df = pd.read_csv(out)
    assert list(df["d"]) == [10, 10_000, 10_000_000]
    assert (df["kappa_mle rel err"] < 1e-10).all()
    assert (df["A_d rel err"] < 1e-10).all()
    # where SciPy's fit is right it agrees with ours on the same data
    assert df.loc[df.d == 10, "scipy/ours"].item() == pytest.approx(1.0, rel=1e-6)


def test_bench_sampling_table(tmp_path, capsys):
    out = tmp_path / "s.csv"
    args = [
        "--models",
        "fnn",
        "--m",
        "4",
        "--b",
        "8",
        "--repeats",
        "2",
        "--calls",
        "1",
        "--seconds",
        "0",
        "--device",
        "cpu",
    ]
    assert (
        main(
            [
                "bench",
                "sampling",
                *args,
                "--methods",
                "vmflib auto,per-example torch.func",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    df = pd.read_csv(out)
    assert set(df["method"]) == {
        "naive loop",
        "vmflib auto",
        "floor (one batch)",
        "floor (best batch)",
        "write m x d",
        "floor + write",
        "per-example torch.func",
    }
    assert (df.loc[df.method == "floor (best batch)", "x floor(best)"] == 1.0).all()
    assert (df.loc[df.method == "floor (one batch)", "x floor(one)"] == 1.0).all()
    assert (df.loc[~df.method.isin(["floor (best batch)", "floor + write"]), "peak_mb"] >= 0).all()
    # the floor plus writing the matrix: the best floor plus the write, round by round
    t = df.set_index("method")["seconds"]
    assert t["floor + write"] >= t["floor (best batch)"] + t["write m x d"] - 1e-12
    assert df.loc[df.method == "vmflib auto", "note"].item() == "backend contract"
    assert (df["seconds"] > 0).all()
    # paired per-round ratios: the naive loop against itself is exactly 1 in every round
    naive = df[df.method == "naive loop"]
    assert naive["x naive med"].item() == 1.0 and naive["x naive max"].item() == 1.0
    assert (df["x naive max"] >= df["x naive med"]).all() and (df["x naive med"] > 0).all()


def test_bench_sampling_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown methods"):
        main(
            ["bench", "sampling", "--models", "fnn", "--methods", "vmflib fast", "--device", "cpu"]
        )


def test_bench_sampling_reuse_out(capsys):
    # --reuse-out: the naive loop and vmflib both write into the one matrix made beforehand
    import torch

    from vmflib.bench import sampling_setup

    fns, d, _ = sampling_setup("fnn", 4, 8, None, "cpu", (1, 28, 28), reuse_out=True)
    kept = fns["naive loop"]()
    assert kept.shape == (4, d)
    naive = kept.clone()
    kept.zero_()
    assert fns["vmflib auto"]() == "contract"
    torch.testing.assert_close(kept, naive, rtol=1e-4, atol=1e-6)  # written in place by out=
    assert fns["write m x d"]() is kept and fns["naive loop"]() is kept
    fresh, _, _ = sampling_setup("fnn", 4, 8, None, "cpu", (1, 28, 28))
    assert fresh["naive loop"]() is not fresh["naive loop"]()
    args = [
        "--models",
        "fnn",
        "--m",
        "4",
        "--b",
        "8",
        "--repeats",
        "1",
        "--calls",
        "1",
        "--seconds",
        "0",
        "--device",
        "cpu",
    ]
    assert main(["bench", "sampling", *args, "--methods", "vmflib auto", "--reuse-out"]) == 0
    assert "reused by every call (out=)" in capsys.readouterr().out


def test_bench_against_a_baseline_checkout(tmp_path, capsys):
    # the checkout against itself (a copy imported as vmflib_baseline): one row per call, both timed
    from pathlib import Path

    import vmflib

    out = tmp_path / "ab.csv"
    root = str(Path(vmflib.__file__).parents[1])
    args = [
        "bench",
        "against",
        "--baseline",
        root,
        "--models",
        "fnn",
        "--m",
        "4",
        "--b",
        "4",
        "--pairs",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    df = pd.read_csv(out)
    assert list(df["call"]) == ["minibatch_gradients", "minibatch_gradients out=", "gradient_stats"]
    assert (
        (df["baseline s"] > 0).all()
        and (df["this s"] > 0).all()
        and (df["paired max"] >= df["paired med"]).all()
    )
    assert main(["bench", "against"]) == 2 and "--baseline" in capsys.readouterr().err
    with pytest.raises(ValueError, match="vmflib/sampling.py"):
        main(["bench", "against", "--baseline", str(tmp_path), "--models", "fnn"])
