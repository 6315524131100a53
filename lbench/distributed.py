"""Process-group lifetime helpers shared by the command line and the DDP scripts.

Lightning creates the ``torch.distributed`` process group when a DDP trainer starts and
leaves it open afterwards. A gloo group still open at interpreter exit can abort the
process (``terminate called without an active exception``, exit -6) while its worker
threads are torn down, so every entry point that may have run DDP closes it on the way out.
"""

import time
from collections.abc import Callable

import torch.distributed as dist


def release_process_group() -> None:
    """Destroy the default process group if one is open; a no-op otherwise (and on 1 process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launched_rank() -> int:
    """This process's global rank as its launcher set it (torchrun, SLURM, Lightning), before any Trainer exists.

    Lightning reads ``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID`` or ``JSM_NAMESPACE_RANK`` at import
    into ``rank_zero_only.rank``; 0 for a plain process.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def wait_until(done: Callable[[], bool], what: str, poll: float = 0.2, timeout: float | None = None) -> None:
    """Poll ``done()`` until it is true: how non-zero ranks wait for rank 0's files, outside any collective.

    No process-group timeout applies, however long rank 0 takes; if rank 0 dies, the launcher
    (torchrun, srun, Lightning) ends the other ranks.

    Raises:
        TimeoutError: ``timeout`` seconds passed (None: wait for ever).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(poll)
