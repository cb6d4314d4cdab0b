"""The command line: the bench tables; errors in the input as one line with exit status 2
(the traceback only with --debug); option checks, defaults and help texts."""

import os
import subprocess
import sys
import urllib.error

import pandas as pd
import pytest

from vmflib import reproduce as rp
from vmflib.__main__ import main
from vmflib.reproduce import layout
from vmflib.validate import UserError

ROOT = layout.ROOT


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


# --- errors, defaults and help -----------------------------------------------------------------
def run_cli(*argv):
    """(exit status, stdout, stderr) of ``python -m vmflib argv`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-m", "vmflib", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_unknown_profile_is_one_line_and_exit_2(capsys):
    assert main(["reproduce", "--profile", "nonexistent"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "error: unknown profile 'nonexistent'; known profiles: paper, quick, smoke "
        "(or pass a .yaml path)"
    ]


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(UserError, match="unknown profile"):
        main(["reproduce", "--profile", "nonexistent", "--debug"])
    with pytest.raises(UserError):
        main(["--debug", "reproduce", "--profile", "nonexistent"])
    assert main(["reproduce", "--profile", "nonexistent"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_yaml_error_through_the_command_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: [ {model: fnn\n")
    status, _, err = run_cli("reproduce", "--profile", str(bad))
    assert status == 2 and str(bad) in err and "not valid YAML" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["reproduce", "--jobs", "0"], "--jobs: expected an integer >= 1, got 0"),
        (["reproduce", "--executor", "dask", "--jobs", "0"], "expected an integer >= 1"),
        (["reproduce", "--scheduler", "tcp://x:8786"], "--scheduler needs --executor dask"),
    ],
)
def test_bad_options_exit_2_before_any_work(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and needle in capsys.readouterr().err


def test_reproduce_checks_its_options_too():
    with pytest.raises(UserError, match="--jobs must be an integer >= 1"):
        rp.reproduce("smoke", n_jobs=0)
    with pytest.raises(UserError, match="--scheduler needs --executor dask"):
        rp.reproduce("smoke", scheduler="tcp://x:8786")


def test_offline_cifar10_fetch_says_what_to_do(monkeypatch, capsys, tmp_path):
    import torchvision.datasets.utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    assert main(["data", "fetch", "cifar10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data fetch cifar10: ") and "needs network access" in err
    assert "copy cifar-10-python.tar.gz (sha256 " in err and str(tmp_path) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_out_default_is_the_checkouts_results_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert layout.default_out() == ROOT / "results"


def help_text(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_shows_defaults_and_no_rst(capsys):
    top = help_text(capsys)
    assert "``" not in top and ":func:" not in top
    assert "reproduce" in top and "status 2" in top
    flat = " ".join(help_text(capsys, "reproduce").split())
    assert "(default: 1)" in flat and f"(default: {ROOT / 'results'})" in flat
    assert "(default: quick)" in flat and "smoke 80-100 s" in flat
