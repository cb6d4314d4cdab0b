"""Every bad input of a profile fails in load_profile, before any work, with a message that
names the file, the key and what was expected (vmflib.validate)."""

from __future__ import annotations

import pytest
import torch
import yaml

from vmflib import reproduce as rp
from vmflib import validate
from vmflib.reproduce import layout, profiles
from vmflib.train import RunConfig
from vmflib.validate import UserError

RUN = {"model": "fnn", "seeds": [0], "model_kwargs": {"hidden": 8}}
NO_CHAPTERS = {name: False for name in ("vmf_estimation", "toy_model", "claim_a", "claim_b")}


def profile_file(tmp_path, name="tiny", runs=None, defaults=None, chapters=None, **extra):
    prof = yaml.safe_load((layout.PROFILES / "smoke.yaml").read_text())
    prof.update({"name": name, "runs": runs or [RUN], "chapters": chapters or NO_CHAPTERS})
    prof["defaults"].update(defaults or {})
    prof.update(extra)
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(prof))
    return p


def fails(path, *needles):
    """load_profile raises UserError whose message holds the file and every needle."""
    with pytest.raises(UserError) as info:
        profiles.load_profile(str(path))
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("name", ["..", "a/b", "", "../../book", "x y"])
def test_profile_name_must_be_a_plain_identifier(tmp_path, name):
    fails(profile_file(tmp_path, name=name), "not a plain identifier", repr(name))


def test_a_good_profile_loads(tmp_path):
    prof = profiles.load_profile(str(profile_file(tmp_path)))
    assert prof.name == "tiny" and len(prof.runs) == 1


def test_epochs_zero_is_rejected_with_the_reason(tmp_path):
    fails(profile_file(tmp_path, defaults={"epochs": 0}), "epochs must be >= 1", "runs[0]")


def test_model_kwargs_typo_names_the_accepted_names(tmp_path):
    run = {**RUN, "model_kwargs": {"hiden": 8}}
    fails(profile_file(tmp_path, runs=[run]), "model_kwargs", "'hiden'", "accepted: hidden")


def test_data_kwargs_typo_names_the_accepted_names(tmp_path):
    path = profile_file(tmp_path, defaults={"data_kwargs": {"nn": 384}})
    fails(path, "data_kwargs", "'nn'", "accepted: n, shape")


def test_cuda_device_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fails(profile_file(tmp_path, defaults={"device": "cuda"}), "no CUDA GPU", "device: cpu")


def test_batch_size_larger_than_the_data_set(tmp_path):
    path = profile_file(tmp_path, defaults={"batch_size": 500})
    fails(path, "batch_size 500 is larger than the training data (384 examples)")


def test_batch_size_against_mnist_size_without_loading_it():
    config = RunConfig(dataset="mnist", batch_size=70_000, epochs=1)
    with pytest.raises(UserError, match="60000 examples"):
        validate.check_run("p.yaml: runs[0]", config)


@pytest.mark.parametrize(
    "params,needle",
    [
        ({"repz": 3}, "sets ['repz'], which vmf_estimation.ipynb does not take"),
        ({"reps": -3}, "chapters.vmf_estimation.reps = -3: expected an integer >= 1"),
        ({"reps": 0}, "expected an integer >= 1"),
        ({"reps": "3"}, "expected an integer like the default 30"),
        ({"kappa_over_d": "big"}, "expected a number"),
        ({"dims": 10}, "expected a list"),
        ({"seed": -1}, "expected an integer >= 0"),
    ],
)
def test_bad_chapter_parameters(tmp_path, params, needle):
    fails(profile_file(tmp_path, chapters={"vmf_estimation": params}), needle)


def test_chapter_parameter_none_where_the_notebook_allows_it(tmp_path):
    path = profile_file(tmp_path, chapters={"toy_model": {"lr_decay_steps": None, "lr": 1}})
    assert profiles.load_profile(str(path)).chapters["toy_model"]["lr_decay_steps"] is None


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nruns: [ {model: fnn\n")
    fails(path, "not valid YAML", "line")


def test_every_page_of_the_book_has_its_source(tmp_path):
    validate.check_book_sources(layout.BOOK, layout.NOTEBOOKS)
    with pytest.raises(UserError, match="lists pages without a source") as info:
        validate.check_book_sources(tmp_path, layout.NOTEBOOKS)
    assert "methods.md" in str(info.value) and "intro.md" in str(info.value)


def test_bad_profile_fails_before_any_output_is_written(tmp_path):
    out = tmp_path / "results"
    with pytest.raises(UserError, match="epochs must be >= 1"):
        rp.reproduce(str(profile_file(tmp_path, defaults={"epochs": 0})), out=out)
    assert not out.exists()


def test_device_override_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="--device cuda: .* no CUDA GPU"):
        rp.reproduce(str(profile_file(tmp_path)), out=tmp_path / "r", device="cuda")
    assert not (tmp_path / "r").exists()
