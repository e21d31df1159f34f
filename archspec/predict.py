"""Classifying image files with a bundle: each file read with Pillow, prepared with the bundle's
recorded preprocessing, the top-k classes and their softmax probabilities. An unreadable file
is reported on its own and does not stop the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from archspec.bundle import Bundle
from archspec.errors import ImageError

BATCH = 64


@dataclass(frozen=True)
class Prediction:
    """The result for one file: `top` is [(class name, probability)], best first, or `error`."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {
            "path": self.path,
            "predictions": [{"class": name, "probability": p} for name, p in self.top],
        }


def predict_files(bundle: Bundle, paths: Sequence[str | Path], topk: int = 1) -> list[Prediction]:
    """One Prediction per path, in order; files that cannot be read get `error` set."""
    import torch

    pre = bundle.preprocess
    names = bundle.class_names
    topk = max(1, min(topk, len(names)))
    results: dict[int, Prediction] = {}
    ready: list[tuple[int, torch.Tensor]] = []
    for i, path in enumerate(paths):
        try:
            ready.append((i, pre(pre.load_image(path))))
        except ImageError as exc:
            results[i] = Prediction(str(path), error=exc.message)
    device = next(bundle.model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(ready), BATCH):
            chunk = ready[start : start + BATCH]
            x = torch.stack([t for _, t in chunk]).to(device)
            probs = bundle.model(x).float().softmax(dim=1)
            values, indices = probs.topk(topk, dim=1)
            for (i, _), vs, ix in zip(chunk, values.tolist(), indices.tolist(), strict=True):
                top = [(names[j], v) for j, v in zip(ix, vs, strict=True)]
                results[i] = Prediction(str(paths[i]), top)
    return [results[i] for i in range(len(paths))]
