"""Progress off a terminal: where tqdm draws no bar (stderr is a file or a pipe: nohup, CI), one
flushed line on stderr per finished trial, family member and re-evaluation run; nothing with
--quiet, and nothing extra on a terminal, where the bars show it."""

from __future__ import annotations

import sys


def lines_wanted(quiet: bool) -> bool:
    """Whether progress goes out as lines: not quiet, and stderr is not a terminal."""
    return not quiet and not sys.stderr.isatty()


def line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
