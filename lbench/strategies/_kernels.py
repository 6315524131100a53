"""Small tensor kernels shared by the strategies: squared norms and distances, D² sampling."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["d2_sample", "pairwise_sq_dists", "sq_norms"]


def sq_norms(x: Tensor) -> Tensor:
    """Squared row norms ``[n]``, without an ``x``-sized temporary."""
    return torch.linalg.vector_norm(x, dim=1).square_()


def pairwise_sq_dists(x: Tensor, y: Tensor, x_sq: Tensor | None = None, y_sq: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances ``[len(x), len(y)]`` via ``|x|² + |y|² - 2 x·y``, clamped at 0.

    ``x_sq``/``y_sq`` are the precomputed squared row norms, when the caller has them.
    """
    x_sq = sq_norms(x) if x_sq is None else x_sq
    y_sq = sq_norms(y) if y_sq is None else y_sq
    return torch.addmm(y_sq.unsqueeze(0), x, y.T, alpha=-2.0).add_(x_sq.unsqueeze(1)).clamp_min_(0.0)


def d2_sample(weights: Tensor, generator: torch.Generator, cum: Tensor | None = None) -> int | None:
    """Draw one position with probability proportional to ``weights`` (D² sampling).

    One uniform float64 number is drawn from ``generator`` (on its own device), so the draw is
    deterministic given the generator's state, on CPU and CUDA weights alike.

    Args:
        weights: ``[n]`` non-negative weights (zero = never drawn).
        generator: Source of the uniform number.
        cum: Optional ``[n]`` float64 buffer for the cumulative sum (avoids an allocation per draw).

    Returns:
        The drawn position, or None when all weights are 0.
    """
    cum = torch.cumsum(weights, dim=0, dtype=torch.float64, out=cum)
    u = torch.rand((), generator=generator, dtype=torch.float64, device=generator.device).to(weights.device)
    idx = int(torch.searchsorted(cum, (u * cum[-1]).reshape(1), right=True).item())
    if idx < weights.shape[0]:
        return idx
    positive = torch.nonzero(weights > 0).squeeze(1)  # u * total hit the end: total 0, or rounding
    return int(positive[-1].item()) if positive.numel() else None
