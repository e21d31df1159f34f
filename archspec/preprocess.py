"""Image preprocessing as a record: how images become a model's input (channels, resize, mean/std
normalisation). The search's datasets and a bundle's `predict` apply the same record, so an image
file is classified exactly as the training images were prepared."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from archspec.errors import ImageError
from archspec.text import shown

if TYPE_CHECKING:
    import torch

Side = Annotated[int, Field(ge=1, le=1 << 16)]


class Preprocessing(BaseModel):
    """Pixels in [0, 1] (8-bit values / 255) -> `channels` channels (grey repeated, or RGB to
    ITU-R 601 luma) -> `resize` to `size` (antialiased when shrinking) -> (x - mean) / std per
    channel. `load_size`: image files are first resized to it with Pillow (how an imagefolder
    dataset is loaded); None when the dataset is not made of files."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    channels: Annotated[int, Field(ge=1, le=4096)]
    size: tuple[Side, Side]  # (height, width)
    resize: Literal["bilinear"] = "bilinear"
    mean: list[float]
    std: list[Annotated[float, Field(gt=0)]]
    load_size: tuple[Side, Side] | None = None

    @model_validator(mode="after")
    def _per_channel(self) -> Preprocessing:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need one value per channel ({self.channels}); got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        return self

    @classmethod
    def fit(cls, x: torch.Tensor, load_size: tuple[int, int] | None = None) -> Preprocessing:
        """The record whose mean and std are those of `x`: training images already through
        `prepare` ((N, C, H, W), the size and channels of the model's input)."""
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return cls(
            channels=x.shape[1],
            size=tuple(x.shape[-2:]),
            mean=mean.tolist(),
            std=std.tolist(),
            load_size=load_size,
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) or (C, H, W) images in [0, 1] (or uint8) -> model input, same rank."""
        single = images.ndim == 3
        x = self.normalize(prepare(images[None] if single else images, self.channels, self.size))
        return x[0] if single else x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel of prepared images (N, C, H, W)."""
        import torch

        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def load_image(self, path: str | Path) -> torch.Tensor:
        """An image file as a (C, H, W) float tensor in [0, 1], `channels` channels, before
        resizing and normalisation; ImageError if it cannot be read or converted."""
        import torch

        from archspec.images import read_image

        if self.channels not in (1, 3):
            raise ImageError(
                f"{shown(path)}: image files give 1 or 3 channels; the model wants {self.channels}"
            )
        array = read_image(path, "L" if self.channels == 1 else "RGB", self.load_size)
        x = torch.from_numpy(array)
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        return x.float() / 255.0


def prepare(images: torch.Tensor, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) images -> float in [0, 1], `channels` channels, resized to `size`."""
    return resize(to_channels(to_float(images), channels), tuple(size))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) -> float in [0, 1]; float images are taken as already in [0, 1]."""
    import torch

    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) with `channels` channels: grey repeated, RGB to ITU-R 601 luma."""
    import torch

    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1 and have == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        return (x * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    raise ImageError(f"the images have {have} channels; the model's input wants {channels}")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) bilinearly resized to `size`, antialiased when shrinking, in chunks."""
    import torch
    import torch.nn.functional as F

    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    chunks = [
        F.interpolate(
            chunk, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2]
        )
        for chunk in x.split(4096)
    ]
    return torch.cat(chunks)
