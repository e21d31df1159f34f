"""Reading one image file, the one way predict, image folders and the dataset cache all do it:
regular files only (a FIFO, device or socket would hang or never end), Pillow's
decompression-bomb limit as an error, at most MAX_TEXT_BYTES of inflated text metadata, 8-bit
modes only, and every failure one ImageError line naming the file (shown safely). Pillow's own
limits stay in force: its pixel limit (a larger image is refused, not decoded: the warning
between 1x and 2x is an error too) and its 1 MB bound on inflated text chunks."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from archspec.errors import ImageError
from archspec.text import shown

if TYPE_CHECKING:
    import numpy as np

# Pillow modes that convert to 8-bit L/RGB without losing range (I, I;16 and F would be clipped)
IMAGE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def regular_file(path: str | Path) -> None:
    """ImageError unless `path` is a regular file (a symlink to one is fine)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageError(f"{shown(path)}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ImageError(f"{shown(path)}: is {kind}, not an image file")


def read_image(
    path: str | Path, mode: Literal["L", "RGB"], size: tuple[int, int] | None = None
) -> np.ndarray:
    """The image as uint8 (H, W) for "L" or (H, W, 3) for "RGB", resized (bilinear) to `size`
    (height, width) when given."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    regular_file(path)
    name = shown(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.mode not in IMAGE_MODES:
                    raise ImageError(
                        f"{name}: image mode {img.mode} is not 8-bit (expected L, RGB or "
                        "another 8-bit mode); convert it first"
                    )
                img = img.convert(mode)
                if size is not None:
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(img).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name}: too large to read (more than {Image.MAX_IMAGE_PIXELS:,} pixels: a "
            "decompression bomb?)"
        ) from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt files
        why = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise ImageError(f"{name}: cannot read the image ({why})") from None
