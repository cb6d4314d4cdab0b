"""Backends: interchangeable ways to compute a chunk of minibatch gradients.

Every backend gives the same numbers as the reference, :mod:`.loop` (one forward and
backward per minibatch), or refuses. A backend is a module with

* ``NAME``: its name in ``backend=...``;
* ``supports(model, device) -> str | None``: why it cannot measure the model as configured
  for measuring (train mode, BatchNorm per ``batchnorm``), or None if it can;
* ``compute(job, chunk) -> None``: writes the chunk's rows into ``chunk.dest``; raises
  :class:`Refusal` when it finds, while computing, that its rows would not be exact;
* optionally ``examples_per_pass(job, x1) -> int``: how many examples one pass may hold
  (sizes the default chunk).

:data:`BACKENDS` maps names to modules; :mod:`vmflib.sampling` picks one and falls back to
the loop when a faster backend refuses.
"""

from __future__ import annotations

from . import contract, loop, vmap
from .job import Chunk, Job, Refusal

#: name -> backend module, in the order ``backend="auto"`` prefers them when they qualify.
BACKENDS = {contract.NAME: contract, vmap.NAME: vmap, loop.NAME: loop}

__all__ = ["BACKENDS", "Chunk", "Job", "Refusal", "contract", "loop", "vmap"]
