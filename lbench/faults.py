"""Fault injection for the resume tests: ``LBENCH_KILL_AFTER=<phase>:<round>`` kills the process there.

``lbench run`` calls :func:`kill_point` after each phase of a round (``fit``, ``test``, ``score``,
``select``, ``journal`` (the oracle's labels journaled, the record not yet written), ``acquire``
(the record written)).
When the variable names that phase and round (of the first arm and seed that reaches it; add
``:<arm>:<seed>`` to name one), the process sends itself ``SIGKILL``: no ``finally`` block, no
flush, exactly what a preempted node or ``kill -9`` leaves behind. Every rank of a DDP run
reaches the same point and kills itself. Unset in normal use.
"""

from __future__ import annotations

import os
import signal

__all__ = ["KILL_VARIABLE", "kill_point"]

KILL_VARIABLE = "LBENCH_KILL_AFTER"


def kill_point(phase: str, rnd: int, arm: str, seed: int) -> None:
    """SIGKILL this process when ``LBENCH_KILL_AFTER`` names this phase (and round, arm, seed)."""
    spec = os.environ.get(KILL_VARIABLE)
    if not spec:
        return
    parts = spec.split(":")
    want = [phase, str(rnd), arm, str(seed)][: len(parts)]
    if parts == want:
        os.kill(os.getpid(), signal.SIGKILL)
