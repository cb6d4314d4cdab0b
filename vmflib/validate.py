"""Checking a profile before any work starts, in the parent process.

:func:`vmflib.reproduce.profiles.load_profile` reads a profile's YAML and builds one
:class:`vmflib.train.RunConfig` per run; the checks here go further, each without loading
data or starting a kernel:

* :func:`check_profile_name` -- a profile name is a plain identifier (it is a folder name);
* :func:`check_run` -- ``epochs >= 1``; ``model_kwargs`` against the model class's
  signature and ``data_kwargs`` against the data set's options; the device exists on this
  machine; ``batch_size`` (and the measurement batch size) fit in the training data, whose
  size is known from the data set spec without loading it;
* :func:`check_chapter_parameters` -- a chapter parameter has the type of its notebook's
  default, and a count (a default >= 1: ``reps``, ``steps``) is >= 1;
* :func:`check_book_sources` -- every page of :data:`vmflib.book.PARTS` has its source.

Every failure is a :class:`UserError` whose message names the file, the key and what was
expected; the command line prints it without a traceback (exit status 2).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from . import book

#: A profile name: letters, digits, ``_`` and ``-``, starting with a letter or digit.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
#: Model constructor arguments that build_model fills itself (not ``model_kwargs``).
MODEL_POSITIONAL = ("input_shape", "num_classes")


class UserError(ValueError):
    """An error in what the user gave (a profile, an option, a missing file): the command
    line prints its message, one or two lines, and exits with status 2."""


def check_profile_name(path: Path, name) -> str:
    """``name`` if it is a plain identifier (:data:`PROFILE_NAME`), else UserError."""
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        raise UserError(
            f"{path}: name {name!r} is not a plain identifier; expected letters, digits, "
            "'_' and '-' only (it is the name of the output folder)"
        )
    return name


def check_run(where: str, config, *, has_cuda=None) -> None:
    """The checks of one run that RunConfig cannot make alone (see the module docstring).

    Args:
        where: the prefix of every message, e.g. ``"<file>: runs[0] (model fnn, seed 0)"``.
        config: a :class:`vmflib.train.RunConfig`.
        has_cuda: whether a CUDA device is present (None: ask torch).
    """
    if config.epochs < 1:
        raise UserError(
            f"{where}: epochs must be >= 1, got {config.epochs} (a run without training has "
            "only its initial measurement; the claims need measurements along training)"
        )
    _check_kwargs(where, "model_kwargs", config.model_kwargs, _model_arguments(config.model))
    _check_kwargs(where, "data_kwargs", config.data_kwargs, _data_arguments(config.dataset))
    check_device(where, config.device, has_cuda)
    n_train = train_size(config.dataset, config.data_kwargs)
    if n_train is not None:
        try:
            config.validate(n_train=n_train)
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None


def _model_arguments(model: str) -> tuple[str, ...] | None:
    """Keyword arguments the model class takes besides input shape and classes; None when
    it takes any (``**kwargs``)."""
    from .models import MODELS

    params = inspect.signature(MODELS[model].cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.name not in MODEL_POSITIONAL)


def _data_arguments(dataset: str) -> tuple[str, ...]:
    """The options the data set's loader takes (``DatasetSpec.options``)."""
    from .data import dataset_spec

    return tuple(dataset_spec(dataset).options)


def _check_kwargs(where: str, key: str, given: dict, accepted: tuple[str, ...] | None) -> None:
    if not isinstance(given, dict):
        raise UserError(f"{where}: {key} must be a mapping, got {given!r}")
    unknown = sorted(set(given) - set(accepted)) if accepted is not None else []
    if unknown:
        takes = ", ".join(accepted) if accepted else "none"
        raise UserError(f"{where}: {key} has unknown names {unknown}; accepted: {takes}")


def check_device(where: str, device: str, has_cuda=None) -> None:
    """``device`` names a device torch has here ("auto" always does)."""
    import torch

    if device == "auto":
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise UserError(f"{where}: device {device!r} is not a torch device") from None
    if kind == "cuda":
        has_cuda = torch.cuda.is_available() if has_cuda is None else has_cuda
        if not has_cuda:
            raise UserError(
                f"{where}: device {device!r} but this machine has no CUDA GPU; "
                "use device: cpu or device: auto (or --device cpu)"
            )


def train_size(dataset: str, data_kwargs: dict) -> int | None:
    """Training examples of ``dataset`` with ``data_kwargs``, without loading it
    (``DatasetSpec.n_train``; None when the spec does not know)."""
    from .data import dataset_spec

    spec = dataset_spec(dataset)
    return None if spec.n_train is None else spec.n_train(**data_kwargs)


# --- chapters --------------------------------------------------------------------------------
def notebook_defaults(path: Path) -> dict[str, tuple[object, str]]:
    """:func:`vmflib.book.notebook_defaults`, with UserError when the notebook has no
    ``parameters`` cell."""
    try:
        return book.notebook_defaults(path)
    except ValueError as e:
        raise UserError(str(e)) from None


def check_chapter_parameters(where: str, notebook: Path, params: dict) -> None:
    """Each value has the type of the notebook's default (ints for ints, numbers for floats,
    text for text, lists for lists; None where the default is None or its comment allows
    it), and a count whose default is >= 1 is >= 1."""
    defaults = notebook_defaults(notebook)
    for key, value in params.items():
        default, comment = defaults.get(key, (..., ""))
        if default is ... or default is None or (value is None and "None" in comment):
            continue
        expected = _expected_type(default)
        if not _has_type(value, default):
            raise UserError(
                f"{where}.{key} = {value!r}: expected {expected} like the default {default!r} "
                f"of {notebook.name}"
            )
        if _is_int(default) and default >= 1 and value < 1:
            raise UserError(f"{where}.{key} = {value!r}: expected an integer >= 1")
        if _is_int(default) and value < 0:
            raise UserError(f"{where}.{key} = {value!r}: expected an integer >= 0")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _has_type(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if _is_int(default):
        return _is_int(value)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def _expected_type(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if _is_int(default):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list | tuple):
        return "a list"
    return type(default).__name__


# --- the book --------------------------------------------------------------------------------
def check_book_sources(book_dir: Path, notebooks: Path) -> None:
    """Every page of the table of contents (:func:`vmflib.book.toc`) has its source: a
    prose page ``book/<name>.md``, a chapter ``notebooks/<name>.ipynb``."""
    root = book_dir / f"{book.ROOT_PAGE}.md"
    missing = [] if root.exists() else [str(root)]
    for part in book.PARTS:
        for page in part.pages:
            if isinstance(page, book.Chapter):
                path = notebooks / page.notebook
            else:
                path = book_dir / f"{page}.md"
            if not path.exists():
                missing.append(str(path))
    if missing:
        raise UserError(
            f"vmflib/book.py lists pages without a source: {', '.join(missing)} "
            "(add the file or remove the page from PARTS)"
        )
