"""Text from outside archspec (file and folder names, class names, manifest fields, decoder
messages) made safe where it lands: on a terminal, control characters and undecodable bytes are
shown escaped, never interpreted (no title changes, no cleared screens); in generated code it
is only ever a `repr`-quoted literal, never spliced into source or a docstring."""

from __future__ import annotations

import os
from pathlib import Path

MAX_SHOWN = 300  # characters of one value in a message


def shown(value: str | Path | bytes | object, limit: int = MAX_SHOWN) -> str:
    """`value` as printable text: control characters (C0, DEL, C1), other non-printable
    characters and undecodable bytes of a file name escaped as Python writes them, cut to
    `limit` characters with '...'."""
    if isinstance(value, Path):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1] if char not in "'\"" else char


def literal(value: str) -> str:
    """A Python string literal for generated code: `repr` of the text, surrogates (from
    undecodable file names) escaped so the file stays valid UTF-8."""
    return repr(value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
