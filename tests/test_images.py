"""The one image loader (archspec/images.py): regular files only, Pillow's limits as errors,
every failure one ImageError line naming the file; and text from outside shown safely."""

import os
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from archspec.errors import ImageError
from archspec.images import read_image
from archspec.text import literal, shown


def _refused(path, pattern, mode="RGB"):
    with pytest.raises(ImageError, match=pattern) as info:
        read_image(path, mode)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_normal_image_reads_in_both_modes(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (5, 3), (10, 20, 30)).save(path)
    rgb = read_image(path, "RGB")
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [10, 20, 30]
    assert read_image(path, "L", size=(4, 6)).shape == (4, 6)


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    errors = []

    def read():
        try:
            read_image(fifo, "RGB")
        except ImageError as exc:
            errors.append(str(exc))

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO hung"
    assert errors == [f"{fifo}: is a FIFO, not an image file"]


def test_devices_and_folders_are_refused(tmp_path):
    _refused("/dev/null", r"/dev/null: is a character device, not an image file")
    _refused(tmp_path, r": is a folder, not an image file")
    _refused(tmp_path / "none.png", r"none\.png: no such file")


def test_a_decompression_bomb_is_refused_not_decoded(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(path)  # 100 M pixels, a few KB on disk
    _refused(path, r"bomb\.png: too large to read \(more than 89,478,485 pixels")


def _png(chunks):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, d) for k, d in chunks)


IHDR = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
IDAT = zlib.compress(b"\x00\x00\x00" * 2)


def test_a_png_with_a_broken_chunk_is_one_line(tmp_path):
    path = tmp_path / "broken.png"
    data = bytearray(_png([(b"IHDR", IHDR), (b"IDAT", IDAT), (b"IEND", b"")]))
    data[40] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
    path.write_bytes(bytes(data))
    _refused(path, r"broken\.png: (cannot read the image|not an image Pillow can read)")


def test_a_text_chunk_that_inflates_to_megabytes_is_one_line(tmp_path):
    path = tmp_path / "text.png"
    text = b"Comment\x00\x00" + zlib.compress(b"x" * (4 << 20))
    path.write_bytes(_png([(b"IHDR", IHDR), (b"zTXt", text), (b"IDAT", IDAT), (b"IEND", b"")]))
    _refused(path, r"text\.png: cannot read the image \(Decompressed [Dd]ata [Tt]oo [Ll]arge")


def test_sixteen_bit_images_are_refused_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.new("I;16", (4, 4), 40000).save(path)
    _refused(path, r"deep\.png: image mode I;16 is not 8-bit")


def test_an_undecodable_file_name_is_shown_escaped(tmp_path):
    name = os.fsdecode(b"caf\xe9\x1b[2J.png")
    path = tmp_path / name
    path.write_bytes(b"not an image")
    message = _refused(path, r"caf\\xe9\\x1b\[2J\.png: not an image Pillow can read")
    assert "\x1b" not in message


def test_shown_and_literal():
    assert shown("a\x1b]0;title\x07b\r\n") == "a\\x1b]0;title\\x07b\\r\\n"
    assert shown("x" * 500, limit=10) == "xxxxxxx..."
    assert shown(os.fsdecode(b"\xff")) == "\\xff"
    assert shown("plain 'quoted' \"text\" é") == "plain 'quoted' \"text\" é"
    for hostile in ['"""', "C:\\Users\\x", "\x1b[31m", "'; import os #", os.fsdecode(b"\xe9")]:
        code = f"value = {literal(hostile)}\n"
        namespace = {}
        exec(compile(code, "<test>", "exec"), namespace)  # a literal, nothing else
        assert namespace["value"] == hostile.encode("utf-8", "surrogateescape").decode(
            "utf-8", "backslashreplace"
        )
