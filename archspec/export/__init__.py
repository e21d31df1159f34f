"""Exporting a model (a bundle, a spec, a study's trial) to deployable files, each written
atomically and verified against the eager model right after writing.

    from archspec.sources import load_source           # a bundle, spec, zoo name or study
    source = load_source("specs/resnet18.yaml")        # random weights unless weights=...
    result = export(source, "resnet18.onnx")           # format from the extension
    print(result.describe())                           # max abs difference per batch
"""

from archspec.export.formats import FORMATS, Format, format_for, onnx_session, openvino_model
from archspec.export.optimize import Optimized, fold_batchnorm, optimize
from archspec.export.pipeline import ExportResult, export
from archspec.export.source import Source, from_bundle, from_spec

__all__ = [
    "FORMATS",
    "ExportResult",
    "Format",
    "Optimized",
    "Source",
    "export",
    "fold_batchnorm",
    "format_for",
    "from_bundle",
    "from_spec",
    "onnx_session",
    "openvino_model",
    "optimize",
]
