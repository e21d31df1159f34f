"""One export: optionally optimize, write to a temporary file, load it back and compare it with
the eager model, then move it into place. A file that fails verification is never left behind."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archspec.errors import ExportError
from archspec.export.atomic import atomic_path, noting_ctrl_c
from archspec.export.formats import FORMATS, Format, example, format_for
from archspec.export.int8 import FORMATS as INT8_FORMATS
from archspec.export.int8 import MIN_AGREEMENT, Int8Check, quantize
from archspec.export.int8 import compare as compare_int8
from archspec.export.int8 import images as int8_images
from archspec.export.optimize import Optimized, optimize
from archspec.export.source import Source
from archspec.export.verify import BATCHES, TOLERANCE, Check, compare, example_inputs, reference

if TYPE_CHECKING:
    from archspec.train.config import Data


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: Format
    checks: list[Check]  # per verified batch, the max abs difference from the eager model
    optimized: Optimized | None
    seconds: float
    int8: Int8Check | None = None  # how the int8 file agrees with float32, and its speed

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)

    def describe(self) -> str:
        if self.int8 is not None:
            return f"wrote {self._files()}; {self.int8.describe()}"
        diffs = ", ".join(f"batch {c.batch}: {c.max_abs_diff:.2g}" for c in self.checks)
        files = [self.path, *(self.path.with_suffix(s) for s in self.format.companions)]
        size = sum(f.stat().st_size for f in files)
        beside = "".join(f" and {f.name}" for f in files[1:])
        return (
            f"wrote {self.path}{beside} ({self.format.name}, {size:,} bytes, "
            f"{self.seconds:.1f} s); max abs difference from the eager model: {diffs}"
        )

    def _files(self) -> str:
        files = [self.path, *(self.path.with_suffix(s) for s in self.format.companions)]
        size = sum(f.stat().st_size for f in files)
        beside = "".join(f" and {f.name}" for f in files[1:])
        took = f"{self.seconds:.1f} s"
        return f"{self.path}{beside} ({self.format.name} int8, {size:,} bytes, {took})"


def _interrupted(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(text: str) -> str:
    """An exporter's message as one line: its first non-empty line, without colour codes."""
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def export(
    source: Source,
    path: str | Path,
    format: str | None = None,
    *,
    optimize_graph: bool = False,
    force: bool = False,
    tolerance: float = TOLERANCE,
    int8: bool = False,
    data: Data | None = None,
    min_agreement: float = MIN_AGREEMENT,
) -> ExportResult:
    """Write `source` to `path` in `format` (default: from the extension) and verify it
    against `source.model` at batches 1 and 4; raises ExportError when anything differs.
    With `int8` (onnx, openvino; a bundle), the verified float file is quantized, calibrated
    on the bundle's training split (or `data`), and kept only when its top-1 agrees with
    float32 on at least `min_agreement` of the held-out test split (or of `data`)."""
    start = time.perf_counter()
    if not 0 <= tolerance < 1:  # NaN fails too
        raise ExportError(f"tolerance must be in [0, 1); got {tolerance}")
    fmt = format_for(path, format)
    fmt.check_installed()
    if int8 and fmt.name not in INT8_FORMATS:
        raise ExportError(f"int8 is for {' and '.join(INT8_FORMATS)} files; not {fmt.name}")
    if not 0 < min_agreement <= 1:
        raise ExportError(f"the top-1 agreement must be in (0, 1]; got {min_agreement}")
    path = Path(path)
    for target in [path, *(path.with_suffix(s) for s in fmt.companions)]:
        if target.exists() and not force:
            raise ExportError(f"{target} exists; not overwritten without force")
    optimized = None
    module = source.model
    if optimize_graph:
        if not fmt.graph:
            graphs = ", ".join(f.name for f in FORMATS.values() if f.graph)
            raise ExportError(
                f"optimizing rewrites the computation; {fmt.name} files keep the spec's own "
                f"layers and weights (optimize applies to {graphs})"
            )
        # ONNX runtimes and OpenVINO choose their own layout; for torch formats measure it
        timing = None if fmt.name in ("onnx", "openvino") else example(source)
        optimized = optimize(source.model, timing)
        module = optimized.module
    inputs = example_inputs(source.spec, BATCHES)
    expected = reference(source.model, inputs)
    calibration = check_images = None
    if int8:
        calibration, check_images, split = int8_images(source, data)
    quantized = None
    with atomic_path(path, force=force, companions=fmt.companions) as tmp:
        written = tmp.with_name(f"{tmp.stem}.float{tmp.suffix}") if int8 else tmp
        try:
            with noting_ctrl_c() as ctrl_c:
                fmt.write(source, module, written)
                runs = fmt.run(written, source, inputs)
                checks = compare(str(path), expected, runs, inputs, tolerance)
                if int8:
                    quantize(fmt.name, written, tmp, calibration)
                    quantized = compare_int8(
                        fmt.name, written, tmp, len(calibration), check_images, split
                    )
        except ExportError:
            raise
        except Exception as exc:  # the exporters' own errors, one line
            if ctrl_c or _interrupted(exc):  # Ctrl-C that an exporter caught and wrapped
                raise KeyboardInterrupt from None
            text = _one_line(str(exc)).replace(str(tmp), str(path)).replace(tmp.name, path.name)
            raise ExportError(f"{fmt.name} export failed: {type(exc).__name__}: {text}") from exc
        if quantized is not None and quantized.agreement < min_agreement:
            raise ExportError(
                f"{path}: not written: {quantized.describe()}; below the {min_agreement:.0%} "
                "asked for (--tolerance-top1), the float32 export is the one to ship"
            )
    return ExportResult(path, fmt, checks, optimized, time.perf_counter() - start, quantized)
