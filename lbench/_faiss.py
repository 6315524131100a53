"""The one place lbench imports faiss.

faiss is an extra: ``pip install "lbench[cpu]"`` (faiss-cpu) or ``"lbench[gpu]"`` (faiss-gpu),
never both, since both provide the ``faiss`` module. Code that can use faiss calls
:func:`get_faiss` and falls back to torch when it returns ``None``.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["HAS_FAISS", "HAS_FAISS_GPU", "get_faiss", "require_faiss"]

_INSTALL_HINT = 'faiss is not installed: pip install "lbench[cpu]" (faiss-cpu) or "lbench[gpu]" (faiss-gpu)'

try:
    import faiss as _faiss
    import faiss.contrib.torch_utils  # noqa: F401  (torch tensors in and out)
    import torch  # noqa: F401  (import torch before faiss: OpenMP load order)
except ImportError:  # pragma: no cover - depends on the install
    _faiss = None

HAS_FAISS: bool = _faiss is not None
HAS_FAISS_GPU: bool = bool(_faiss is not None and hasattr(_faiss, "StandardGpuResources") and _faiss.get_num_gpus() > 0)


def get_faiss() -> ModuleType | None:
    """Return the faiss module, or ``None`` when it is not installed."""
    return _faiss


def require_faiss() -> ModuleType:
    """Return the faiss module or raise an ImportError that says which extra to install."""
    if _faiss is None:
        raise ImportError(_INSTALL_HINT)
    return _faiss
