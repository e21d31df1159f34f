"""`archspec import`: any PyTorch model as a spec. Traced with torch.fx (torch.export where
torch.fx cannot), mapped op for op, blocks and repeats recovered from the module hierarchy, names
kept, verified before it is written."""

from archspec.importer.capture import ImportSourceError, load_source, parse_kwargs
from archspec.importer.convert import Imported, from_torch, import_module, import_source

__all__ = [
    "ImportSourceError",
    "Imported",
    "from_torch",
    "import_module",
    "import_source",
    "load_source",
    "parse_kwargs",
]
