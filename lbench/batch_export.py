"""What ``lbench select`` writes for a person: ``batch_XXX.csv``, a contact sheet and Label Studio tasks.

Each select writes, next to the pool file, a numbered batch (``XXX`` = one more than the highest
batch number there): ``batch_XXX.csv`` (rank, index, file path, predicted class, its probability,
the strategy's score), ``batch_XXX.png`` (a grid of thumbnails captioned ``#rank i=index``) and
``batch_XXX.labelstudio.json`` (one Label Studio task per item, with the model's guess as a
prediction). Once annotated in Label Studio, an export of these tasks is read back by
``lbench label`` (``data.index`` names the pool item).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from lbench._io import atomic_write
from lbench.data.base import ImageSplit
from lbench.strategies.base import QueryStrategy
from lbench.strategies.uncertainty import Confidence, Entropy, Margin, confidence_scores, entropy_scores, margin_scores

__all__ = [
    "BatchItem",
    "batch_items",
    "batch_paths",
    "contact_sheet",
    "labelstudio_tasks",
    "next_batch_number",
    "render_batch",
    "write_batch",
    "write_files",
]

#: At most this many thumbnails in a contact sheet (the first ones by rank).
MAX_THUMBNAILS = 100
#: Thumbnail side in pixels, and height of the caption under it.
THUMB = 96
CAPTION = 14
PAD = 2
COLUMNS = 10

_BATCH = re.compile(r"^batch_(\d+)\.")
_SCORES: dict[type, Callable[[Tensor], Tensor]] = {
    Margin: margin_scores,
    Entropy: entropy_scores,
    Confidence: confidence_scores,
}


@dataclass(frozen=True)
class BatchItem:
    """One selected item as the batch files show it."""

    rank: int
    index: int
    id: str
    path: str  # the file path (relative to the project folder) or "" for in-memory data
    predicted: str
    probability: float
    score: float


def next_batch_number(folder: str | Path) -> int:
    """One more than the highest ``batch_NNN.*`` number in ``folder`` (1 when there is none)."""
    folder = Path(folder)
    found = [int(m.group(1)) for p in folder.iterdir() if (m := _BATCH.match(p.name))] if folder.is_dir() else []
    return max(found, default=0) + 1


def batch_paths(folder: str | Path, number: int) -> tuple[Path, Path, Path]:
    """``batch_NNN.csv``, ``batch_NNN.png`` and ``batch_NNN.labelstudio.json`` in ``folder``."""
    stem = Path(folder) / f"batch_{number:03d}"
    return stem.with_suffix(".csv"), stem.with_suffix(".png"), Path(f"{stem}.labelstudio.json")


def strategy_scores(query: QueryStrategy | None, probs: Tensor) -> Tensor:
    """The strategy's ranking score of each row (higher = picked first) when it ranks by one, else the margin.

    The margin is ``p_top1 - p_top2`` as ``selected.csv``'s ``margin`` column (small = uncertain).
    """
    for cls, fn in _SCORES.items():
        if isinstance(query, cls):
            return fn(probs)
    return -margin_scores(probs)


def _has_files(split: ImageSplit) -> bool:
    return hasattr(split, "files") and callable(getattr(split, "path", None))


def batch_items(
    selected: Sequence[int],
    probs: Tensor,
    split: ImageSplit,
    class_names: Sequence[str] | None,
    query: QueryStrategy | None = None,
) -> list[BatchItem]:
    """The rows of a batch: ``probs[k]`` are the predicted probabilities of pool item ``selected[k]``."""
    probs = probs.detach().float().cpu()
    conf, pred = probs.max(1) if len(probs) else (torch.empty(0), torch.empty(0, dtype=torch.long))
    scores = strategy_scores(query, probs)
    files = _has_files(split)
    items = []
    for r, (i, p, c, s) in enumerate(zip(selected, pred.tolist(), conf.tolist(), scores.tolist(), strict=True)):
        name = class_names[p] if class_names and p < len(class_names) else str(p)
        item_id = split.item_id(int(i))
        items.append(BatchItem(r, int(i), item_id, item_id if files else "", name, float(c), float(s)))
    return items


def batch_csv(items: Sequence[BatchItem]) -> bytes:
    """``batch_XXX.csv``: ``rank,index,id,path,predicted,probability,score``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "index", "id", "path", "predicted", "probability", "score"])
    for it in items:
        w.writerow([it.rank, it.index, it.id, it.path, it.predicted, f"{it.probability:.6f}", f"{it.score:.6f}"])
    return buf.getvalue().encode("utf-8")


def labelstudio_tasks(items: Sequence[BatchItem]) -> list[dict[str, object]]:
    """One Label Studio task per item: ``data.image`` (path or id), ``data.index`` and the model's guess.

    The labeling config these tasks fit: ``<Image name="image" value="$image"/>`` and
    ``<Choices name="label" toName="image">`` with one ``<Choice>`` per class.
    """
    return [
        {
            "data": {"image": it.path or it.id, "index": it.index},
            "predictions": [
                {
                    "model_version": "lbench",
                    "score": it.score,
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [it.predicted]},
                        }
                    ],
                }
            ],
        }
        for it in items
    ]


def _to_pil(image: Tensor) -> Image.Image:
    x = image.detach().float().cpu()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image [C, H, W] with 1, 3 or 4 channels, got {tuple(x.shape)}")
    arr = (x[:3].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0], "L").convert("RGB") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def _thumbnail(split: ImageSplit, index: int) -> Image.Image | None:
    try:
        img = _to_pil(split.load_image(index))
    except Exception:  # a missing or unreadable file is a grey "missing" tile, never a crash
        return None
    w, h = img.size
    if w <= 0 or h <= 0:
        return None
    scale = (THUMB - 2 * PAD) / max(w, h)  # a gap between neighbouring tiles
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BICUBIC)


def sheet_size(n: int) -> tuple[int, int]:
    """Width and height in pixels of the contact sheet of ``n`` items."""
    n = min(n, MAX_THUMBNAILS)
    cols = max(1, min(n, COLUMNS))
    rows = max(1, -(-n // cols))
    return cols * THUMB, rows * (THUMB + CAPTION)


def contact_sheet(split: ImageSplit, items: Sequence[BatchItem]) -> Image.Image:
    """A grid of the first :data:`MAX_THUMBNAILS` items' thumbnails, each captioned ``#rank i=index``."""
    shown = list(items)[:MAX_THUMBNAILS]
    sheet = Image.new("RGB", sheet_size(len(shown)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, it in enumerate(shown):
        x, y = (k % COLUMNS) * THUMB, (k // COLUMNS) * (THUMB + CAPTION)
        thumb = _thumbnail(split, it.index)
        if thumb is None:
            draw.rectangle([x, y, x + THUMB - 1, y + THUMB - 1], fill=(128, 128, 128))
            draw.text((x + 4, y + THUMB // 2 - 6), "missing", fill=(255, 255, 255), font=font)
        else:
            sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        draw.text((x + 2, y + THUMB + 1), f"#{it.rank} i={it.index}", fill=(0, 0, 0), font=font)
    return sheet


def render_batch(
    folder: str | Path, items: Sequence[BatchItem], split: ImageSplit, number: int | None = None
) -> list[tuple[Path, bytes]]:
    """The batch files' paths and contents, built in memory (nothing is written)."""
    folder = Path(folder)
    if number is None:
        number = next_batch_number(folder)
    csv_path, png_path, ls_path = batch_paths(folder, number)
    png = io.BytesIO()
    contact_sheet(split, items).save(png, format="PNG")
    tasks = (json.dumps(labelstudio_tasks(items), indent=1) + "\n").encode("utf-8")
    return [(csv_path, batch_csv(items)), (png_path, png.getvalue()), (ls_path, tasks)]


def write_files(files: Sequence[tuple[Path, bytes]]) -> list[Path]:
    """Write each ``(path, bytes)`` atomically; returns the paths."""
    for path, data in files:
        atomic_write(path, lambda f, data=data: f.write(data))
    return [path for path, _ in files]


def write_batch(
    folder: str | Path, items: Sequence[BatchItem], split: ImageSplit, number: int | None = None
) -> list[Path]:
    """Write ``batch_NNN.{csv,png,labelstudio.json}`` into ``folder`` atomically; returns their paths.

    Everything is built in memory first, so a failure while rendering writes nothing. Call it while
    holding the folder's lock (``select`` does), so two selects never take the same number.
    """
    return write_files(render_batch(folder, items, split, number))
