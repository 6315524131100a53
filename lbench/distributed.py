"""Process-group lifetime helpers shared by the command line and the DDP scripts.

Lightning creates the ``torch.distributed`` process group when a DDP trainer starts and
leaves it open afterwards. A gloo group still open at interpreter exit can abort the
process (``terminate called without an active exception``, exit -6) while its worker
threads are torn down, so every entry point that may have run DDP closes it on the way out.
"""

import torch.distributed as dist


def release_process_group() -> None:
    """Destroy the default process group if one is open; a no-op otherwise (and on 1 process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
