"""Profiles: a profile's YAML (``notebooks/profiles/<name>.yaml``) -> a validated :class:`Profile`.

A profile lists the training runs (RunConfig fields, models, seeds, an optional group) and
may override the parameters of the book's chapters (declared once, in :mod:`vmflib.book`).
:func:`load_profile` checks all of it (with :mod:`vmflib.validate`) before any work starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from .. import book, validate
from ..train import RunConfig
from ..validate import UserError
from . import layout

PROFILE_KEYS = {"name", "description", "defaults", "runs", "chapters"}
#: Parameters that reproduce gives every results chapter (a profile cannot set them).
RESULTS_PARAMETERS = ("results_dir", "profile")
#: A results chapter whose notebook declares this parameter reads every run of the profile
#: (all groups) and gets the profile's chapter overrides in it (``{chapter: {name: value}}``).
ALL_CHAPTERS_PARAMETER = "chapters"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A validated profile: its training runs and the chapters it executes.

    ``groups`` holds, for each run in ``runs``, the ``group`` of its runs entry (None for
    none): a grouped run is read only by the results chapter of that group
    (:class:`vmflib.book.Chapter`). ``chapters`` maps every chapter of
    :data:`vmflib.book.CHAPTERS` that the profile does not switch off (``name: false``) to
    its parameters (the notebook's defaults where the profile gives none), in the book's
    order."""

    name: str
    description: str
    runs: tuple[RunConfig, ...]
    chapters: dict[str, dict]
    groups: tuple[str | None, ...] = ()

    def run_groups(self) -> tuple[str | None, ...]:
        """The group of every run of ``runs`` (None where it has none)."""
        return self.groups or (None,) * len(self.runs)


def profile_path(profile: str) -> Path:
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = layout.PROFILES / f"{profile}.yaml"
    if not p.exists():
        known = ", ".join(sorted(q.stem for q in layout.PROFILES.glob("*.yaml")))
        raise UserError(
            f"unknown profile {profile!r}; known profiles: {known} (or pass a .yaml path)"
        )
    return p


def load_profile(profile: str) -> Profile:
    """Read and check a profile before any work starts: its name, every run's RunConfig and
    :func:`vmflib.validate.check_run`, every chapter's parameters against its notebook's
    parameters cell. Errors are :class:`UserError` naming the file and the entry."""
    path = profile_path(profile)
    try:
        prof = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(prof, dict):
        raise UserError(f"{path}: a profile must be a YAML mapping")
    unknown = set(prof) - PROFILE_KEYS
    if unknown:
        raise UserError(
            f"{path}: unknown profile keys {sorted(unknown)}; known: {sorted(PROFILE_KEYS)}"
        )
    name = validate.check_profile_name(path, prof.get("name", path.stem))
    runs, groups = _profile_runs(path, prof)
    return Profile(
        name=name,
        description=(prof.get("description") or "").strip(),
        runs=runs,
        chapters=_profile_chapters(path, prof.get("chapters")),
        groups=groups,
    )


def _profile_runs(path: Path, prof: dict):
    """(RunConfigs, groups): one RunConfig per (runs entry, seed), RunConfig defaults <
    profile defaults < entry, and the entry's optional ``group`` (a results chapter's
    :attr:`vmflib.book.Chapter.group`)."""
    if not isinstance(prof.get("runs"), list) or not prof["runs"]:
        raise UserError(
            f"{path}: 'runs' must be a non-empty list of {{model: ..., seeds: [...]}} entries"
        )
    defaults = prof.get("defaults") or {}
    configs: dict[str, RunConfig] = {}
    groups: dict[str, str | None] = {}
    for i, entry in enumerate(prof["runs"]):
        if not isinstance(entry, dict) or "model" not in entry:
            raise UserError(f"{path}: runs[{i}] must be a mapping with at least 'model'")
        seeds = entry.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
            raise UserError(f"{path}: runs[{i}].seeds must be a list of integers, got {seeds!r}")
        group = entry.get("group")
        known_groups = {c.group for c in book.CHAPTERS.values()} - {None}
        if group is not None and group not in known_groups:
            raise UserError(
                f"{path}: runs[{i}].group {group!r} is read by no chapter; "
                f"known groups: {sorted(known_groups)} (vmflib/book.py)"
            )
        for seed in seeds:
            fields = {**defaults, **{k: v for k, v in entry.items() if k not in ("seeds", "group")}}
            where = f"{path}: runs[{i}] (model {entry['model']}, seed {seed})"
            try:
                config = RunConfig.from_dict({**fields, "seed": seed})
            except (TypeError, ValueError) as e:
                raise UserError(f"{where}: {e}") from None
            validate.check_run(where, config)
            name = run_name(config, group)
            if name in configs:
                raise UserError(f"{where}: a second run named {name}")
            configs[name], groups[name] = config, group
    return tuple(configs.values()), tuple(groups.values())


def _profile_chapters(path: Path, section) -> dict[str, dict]:
    """Parameters of every chapter the profile runs: a chapter left out runs with its
    notebook's defaults, ``name: false`` leaves it out (the book shows a placeholder)."""
    section = section or {}
    if not isinstance(section, dict):
        raise UserError(f"{path}: 'chapters' must be a mapping of chapter name -> parameters")
    unknown = set(section) - set(book.CHAPTERS)
    if unknown:
        raise UserError(
            f"{path}: chapters {sorted(unknown)} are not chapters of the book; "
            f"known: {list(book.CHAPTERS)} (declared in vmflib/book.py)"
        )
    chapters = {}
    for name, chapter in book.CHAPTERS.items():
        params = section.get(name)
        if params is False:
            continue
        if not isinstance(params, dict | None):
            raise UserError(f"{path}: chapters.{name} must be a mapping, null or false")
        allowed = set(book.notebook_parameters(layout.NOTEBOOKS / chapter.notebook))
        if chapter.kind == "results":
            allowed -= {*RESULTS_PARAMETERS, ALL_CHAPTERS_PARAMETER}
        bad = set(params or {}) - allowed
        if bad:
            raise UserError(
                f"{path}: chapters.{name} sets {sorted(bad)}, which {chapter.notebook} "
                f"does not take; it takes {sorted(allowed)}"
            )
        where = f"{path}: chapters.{name}"
        validate.check_chapter_parameters(where, layout.NOTEBOOKS / chapter.notebook, params or {})
        chapters[name] = dict(params or {})
    return chapters


def run_name(config: RunConfig, group: str | None = None) -> str:
    """``<dataset>-<model>-seed<seed>``; a grouped run adds its batch size and learning rate,
    ``<dataset>-<model>-b<batch_size>-lr<lr>-seed<seed>``."""
    if group is None:
        return f"{config.dataset}-{config.model}-seed{config.seed}"
    return f"{config.dataset}-{config.model}-b{config.batch_size}-lr{config.lr:g}-seed{config.seed}"
