"""A model as one standalone, readable PyTorch source file: an nn.Module whose `__init__` builds
the same submodule tree (so `state_dict` keys are archspec's) and whose forward is the generated
fx code, re-traced through archspec's own modules so that only torch remains."""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
import math
import operator
import re
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import fx, nn

from archspec.errors import ExportError
from archspec.text import literal

# torch.nn leaves whose repr() is their constructor call: kept as submodules; every other module
# (archspec's SqueezeExcitation, LayerNorm2d, StochasticDepth, ...) is traced into.
_REPR_IS_CONSTRUCTOR: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.GroupNorm,
    nn.Linear,
    nn.Dropout,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
)


def _attention(m: nn.MultiheadAttention) -> str:
    return (
        f"nn.MultiheadAttention({m.embed_dim}, {m.num_heads}, dropout={m.dropout}, "
        f"bias={m.in_proj_bias is not None}, add_bias_kv={m.bias_k is not None}, "
        f"add_zero_attn={m.add_zero_attn}, kdim={m.kdim}, vdim={m.vdim}, "
        f"batch_first={m.batch_first})"
    )


def _layer_norm(m: nn.LayerNorm) -> str:
    return (
        f"nn.LayerNorm({tuple(m.normalized_shape)}, eps={m.eps}, "
        f"elementwise_affine={m.elementwise_affine}, bias={m.bias is not None})"
    )


def _conv(m: nn.Conv2d) -> str:
    # repr() writes padding_mode=circular, unquoted
    return (
        f"nn.{type(m).__name__}({m.in_channels}, {m.out_channels}, "
        f"kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding!r}, "
        f"dilation={m.dilation}, groups={m.groups}, bias={m.bias is not None}, "
        f"padding_mode={m.padding_mode!r})"
    )


# torch.nn leaves whose repr leaves out constructor arguments or is not valid Python, or that
# fx cannot trace into.
_CONSTRUCTORS: dict[type[nn.Module], Callable[[nn.Module], str]] = {
    nn.MultiheadAttention: _attention,
    nn.LayerNorm: _layer_norm,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.Conv3d: _conv,
}

# Names fx's generated code may use beyond torch, and the line that provides each.
_PROVIDED = {
    "operator": "import operator",
    "math": "import math",
    "inf": "from math import inf",
    "nan": "from math import nan",
    "device": "from torch import device",
    "NoneType": "NoneType = type(None)",
}
_ALWAYS = {"torch", "fx_pytree", "pytree"}  # fx adds the pytree modules whether used or not


def _constructor(module: nn.Module) -> str | None:
    kind = type(module)
    if kind in _CONSTRUCTORS:
        return _CONSTRUCTORS[kind](module)
    if kind in _REPR_IS_CONSTRUCTOR:
        return "nn." + repr(module)
    return None


def _is_leaf(module: nn.Module) -> bool:
    return type(module) in _CONSTRUCTORS or type(module) in _REPR_IS_CONSTRUCTOR


class _Tracer(fx.Tracer):
    """Traces through every module except torch.nn leaves and the `copied` classes."""

    def __init__(self, copied: set[type] = frozenset(), functions: tuple = ()):
        super().__init__(autowrap_functions=functions)
        self.copied = copied

    # decided by type alone: touching a module's attributes while tracing records them
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _is_leaf(m) or type(m) in self.copied


def _untraceable(model: nn.Module) -> set[type]:
    """Module classes fx cannot trace into (Python control flow on shapes, as in Swin's window
    attention): their source is copied into the file instead. Innermost first, so that a
    parent is only copied when it fails with its failing children kept whole."""
    copied: set[type] = set()
    for module in reversed(list(model.modules())):
        kind = type(module)
        if _is_leaf(module) or kind in copied or kind.__module__.startswith("torch."):
            continue
        try:
            _Tracer(copied).trace(module)
        except Exception:  # fx raises TraceError/TypeError/... for code it cannot follow
            copied.add(kind)
    return copied


def _called_functions(model: nn.Module) -> tuple[types.FunctionType, ...]:
    """archspec's own functions the generated forward calls (prepend_token, channel_shuffle,
    ...): kept as calls, their source copied, rather than traced into (fx cannot always)."""
    graph = getattr(model, "graph", None)
    if not isinstance(graph, fx.Graph):
        return ()
    found = {
        n.target
        for n in graph.nodes
        if n.op == "call_function"
        and isinstance(n.target, types.FunctionType)
        and n.target.__module__.startswith("archspec")
    }
    return tuple(sorted(found, key=lambda f: f.__qualname__))


def _trace(
    model: nn.Module, copied: set[type], functions: tuple[types.FunctionType, ...]
) -> fx.GraphModule:
    if model.training:
        raise ExportError("standalone source is written from a model in eval mode")
    try:
        graph = _Tracer(copied, functions).trace(model)
    except Exception as exc:
        raise ExportError(f"cannot trace the model into plain torch code: {exc}") from exc
    return fx.GraphModule(model, graph)


# --- copied classes: their source, what it refers to, and an instance without __init__ -------

# modules the copied source may use, by object, and the line that imports each under a name
_MODULES = {
    torch: "import torch",
    nn: "from torch import nn",
    torch.nn.functional: "import torch.nn.functional as {name}",
    math: "import math",
    operator: "import operator",
}


def _code_objects(obj: object) -> Iterator[types.CodeType]:
    members = vars(obj).values() if isinstance(obj, type) else [obj]
    for member in members:
        member = getattr(member, "__func__", member)  # staticmethod / classmethod
        if isinstance(member, property):
            member = member.fget
        code = getattr(member, "__code__", None)
        stack = [code] if isinstance(code, types.CodeType) else []
        while stack:
            current = stack.pop()
            yield current
            stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def copied_source(classes: set[type] | set[object]) -> tuple[list[str], set[str]]:
    """(the source of each class and of the functions and classes it uses, dependencies first;
    the import lines they need). Raises ExportError for anything else they refer to."""
    order: list[str] = []
    imports: set[str] = set()
    seen: set[object] = set()

    def visit(obj: object) -> None:
        if obj in seen:
            return
        seen.add(obj)
        scope = sys.modules[obj.__module__].__dict__
        for code in _code_objects(obj):
            for name in code.co_names:
                value = scope.get(name, _MISSING)
                if value is _MISSING or name in dir(builtins):
                    continue  # an attribute name, or a builtin
                if isinstance(value, types.ModuleType):
                    if value not in _MODULES:
                        raise ExportError(
                            f"standalone source: {obj.__qualname__} uses module {value.__name__}"
                        )
                    imports.add(_MODULES[value].format(name=name))
                elif isinstance(value, (type, types.FunctionType)) and getattr(
                    value, "__module__", ""
                ).startswith("archspec"):
                    visit(value)
                elif not (isinstance(value, (int, float, str, bool)) or value is None):
                    raise ExportError(
                        f"standalone source: {obj.__qualname__} uses {name} "
                        f"({type(value).__name__}), which cannot be copied"
                    )
                else:
                    order.append(f"{name} = {value!r}")
        order.append(textwrap.dedent(inspect.getsource(obj)).strip())

    for cls in sorted(classes, key=lambda c: c.__qualname__):
        visit(cls)
    return list(dict.fromkeys(order)), imports


_MISSING = object()


def _restore_expr(module: nn.Module, children: list[tuple[str, str]], pad: str, close: str) -> str:
    attributes = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        try:
            literal = ast.literal_eval(repr(value)) == value
        except (ValueError, SyntaxError):
            literal = False
        if not literal:
            raise ExportError(
                f"standalone source: {type(module).__name__}.{key} is a "
                f"{type(value).__name__}, not a literal the file can hold"
            )
        attributes[key] = value
    if module._non_persistent_buffers_set:
        raise ExportError(
            f"standalone source: {type(module).__name__} has buffers outside its state_dict"
        )
    body = "".join(f"{pad}{n}={e},\n" for n, e in children)
    return f"_restore(\n{pad}{type(module).__name__},\n{pad}{attributes!r},\n{body}{close})"


def _identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _is_sequence(children: list[str]) -> bool:
    return bool(children) and children == [str(i) for i in range(len(children))]


def _access(base: str, path: list[str], tree: nn.Module) -> str:
    """Readable attribute access: `self.layer1[0].conv1` (nn.Sequential containers index by
    position, others by attribute, ModuleDicts by key)."""
    out, node = base, tree
    for part in path:
        if isinstance(node, nn.Sequential):
            out += f"[{part}]"
        elif isinstance(node, nn.ModuleDict):
            out += f"[{part!r}]"
        elif _identifier(part):
            out += f".{part}"
        else:
            out = f"getattr({out}, {part!r})"
        node = getattr(node, part, None)
    return out


def _container(names: list[str]) -> nn.Module:
    if _is_sequence(names):
        return nn.Sequential()
    if all(_identifier(n) for n in names):
        return nn.Module()
    return nn.ModuleDict()


def _skeleton(model: nn.Module, leaves: set[str], copied: set[type]) -> nn.Module:
    """A tree of empty containers with the model's shape, to decide how each one is written."""

    def build(prefix: str, module: nn.Module) -> nn.Module:
        names = list(module._modules)
        plain = not names or not prefix or type(module) in copied  # attribute access
        out = nn.Module() if plain else _container(names)
        for name in names:
            path = f"{prefix}{name}"
            child = module._modules[name]
            assert child is not None
            out.add_module(name, nn.Identity() if path in leaves else build(path + ".", child))
        return out

    return build("", model)


def _init_lines(model: nn.Module, skeleton: nn.Module, copied: set[type], indent: str) -> list[str]:
    leaves = {n for n, m in model.named_modules(remove_duplicate=False) if _is_leaf(m)}

    def expr(prefix: str, module: nn.Module, shape: nn.Module, depth: int) -> str:
        if prefix.rstrip(".") in leaves:
            return _constructor(module) or ""
        pad = indent + "    " * (depth + 1)
        close = indent + "    " * depth
        names = list(module._modules)
        items = [
            (n, expr(f"{prefix}{n}.", module._modules[n], getattr(shape, n), depth + 1))
            for n in names
        ]
        if type(module) in copied:
            return _restore_expr(module, items, pad, close)
        if isinstance(shape, nn.Sequential):
            body = "".join(f"{pad}{e},\n" for _, e in items)
            return f"nn.Sequential(\n{body}{close})"
        if isinstance(shape, nn.ModuleDict):
            body = "".join(f"{pad}{n!r}: {e},\n" for n, e in items)
            return f"nn.ModuleDict({{\n{body}{close}}})"
        body = "".join(f"{pad}{n}={e},\n" for n, e in items)
        return f"_Module(\n{body}{close})" if items else "_Module()"

    lines = []
    for name in model._modules:
        child = model._modules[name]
        value = expr(name + ".", child, getattr(skeleton, name), 0)
        if _identifier(name):
            lines.append(f"{indent}self.{name} = {value}")
        else:
            lines.append(f"{indent}self.add_module({name!r}, {value})")
    for path, tensor in _own_tensors(model):
        *parent, leaf = path.split(".")
        owner = _access("self", parent, skeleton)
        shape, dtype = list(tensor.shape), str(tensor.dtype)
        if isinstance(tensor, nn.Parameter):
            lines.append(
                f"{indent}{owner}.register_parameter({leaf!r}, "
                f"nn.Parameter(torch.empty({shape}, dtype={dtype})))"
            )
        else:
            lines.append(
                f"{indent}{owner}.register_buffer({leaf!r}, torch.empty({shape}, dtype={dtype}))"
            )
    return lines


def _own_tensors(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Parameters and buffers that live on containers (class tokens, layer scales), not leaves."""
    if _is_leaf(module):
        return
    for name, p in module._parameters.items():
        if p is not None:
            yield prefix + name, p
    for name, b in module._buffers.items():
        if b is not None and name not in module._non_persistent_buffers_set:
            yield prefix + name, b
    for name, child in module._modules.items():
        if child is not None:
            yield from _own_tensors(child, f"{prefix}{name}.")


def _forward(
    traced: fx.GraphModule, skeleton: nn.Module, functions: tuple[types.FunctionType, ...]
) -> tuple[str, list[str], list[str]]:
    """(the forward's source, the import lines it needs, alias lines for copied functions)."""
    code = traced.graph.python_code(root_module="self")
    # fx registers wrapped functions at module level (`torch.fx._symbolic_trace.wrap(...)`);
    # a plain file just calls them
    src = re.sub(r"^torch\.fx\._symbolic_trace\.wrap\(.*\)$", "", code.src, flags=re.MULTILINE)
    aliases = []
    for name, value in code.globals.items():
        if value in functions:
            short = value.__name__
            # the function's own name, unless a local variable of the forward has it
            free = next(
                c
                for c in (short, f"{short.lstrip('_')}_fn", name)
                if not re.search(rf"\b{c}\b", src) or c == name
            )
            src = re.sub(rf"\b{name}\b", free, src)
            if free != short:
                aliases.append(f"{free} = {short}")
    unknown = set(code.globals) - _ALWAYS - set(_PROVIDED)
    unknown -= {n for n, v in code.globals.items() if v in functions}
    unknown -= {n for n in unknown if getattr(builtins, n, None) is code.globals[n]}  # getattr
    if unknown:
        raise ExportError(
            "standalone source: the forward calls "
            + ", ".join(sorted(unknown))
            + ", which are not torch functions"
        )
    targets = {
        n.target
        for n in traced.graph.nodes
        if n.op in ("call_module", "get_attr") and isinstance(n.target, str)
    }
    # fx spells `layer1.0.conv1` as getattr(self.layer1, "0").conv1; write it as torch code would
    for target in sorted(targets, key=len, reverse=True):
        src = src.replace(
            fx.graph._format_target("self", target), _access("self", target.split("."), skeleton)
        )
    used = [line for name, line in _PROVIDED.items() if re.search(rf"\b{name}\b", src)]
    body = "\n".join(line.rstrip() for line in src.strip("\n").splitlines())
    return body, used, aliases


_TEMPLATE = '''"""A model written by archspec as standalone PyTorch source: only torch and
safetensors are needed. ABOUT below says which model it is and where its weights come from;
CLASS_NAMES names its outputs.
The forward is archspec's generated code for inference (eval mode: dropout and stochastic
depth are identities). Parameter names are archspec's, so its weights load as they are:

    model = load("weights.safetensors")     # a state_dict written by `archspec export`
    logits = model(images)                  # {shape}
"""

from __future__ import annotations
{imports}
import torch
from safetensors.torch import load_file
from torch import nn

ABOUT = {about}
CLASS_NAMES = {class_names}


class _Module(nn.Module):
    """A container with named children, like nn.Sequential but with names."""

    def __init__(self, **children: nn.Module):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
{copied}

class {cls}(nn.Module):
    def __init__(self):
        super().__init__()
{init}

{forward}


def load(weights: str, map_location: str = "cpu") -> {cls}:
    """The model in eval mode with the weights of a .safetensors file (strict: every name)."""
    model = {cls}()
    model.load_state_dict(load_file(weights, device=map_location), strict=True)
    return model.eval()
'''


_RESTORE = '''def _restore(cls: type, attributes: dict, **children: nn.Module) -> nn.Module:
    """An instance of `cls` made without running its __init__ (whose arguments are not kept):
    the plain attributes it had, then its submodules; its parameters and buffers are
    registered in the model's __init__ and filled by load()."""
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    module.__dict__.update(attributes)
    for name, child in children.items():
        module.add_module(name, child)
    return module'''


def python_source(
    model: nn.Module,
    class_name: str,
    title: str,
    input_shape: str,
    class_names: Sequence[str] | None = None,
) -> str:
    """The text of a standalone .py file defining `class_name` and `load(weights)`. `title`
    and `class_names` come from outside (a bundle, a study, folder names): they are written
    only as quoted literals (ABOUT, CLASS_NAMES), never into source text or a docstring."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        class_name = "Model"
    copied = _untraceable(model)
    functions = _called_functions(model)
    traced = _trace(model, copied, functions)
    leaves = {n for n, m in model.named_modules(remove_duplicate=False) if _is_leaf(m)}
    skeleton = _skeleton(model, leaves, copied)
    init = _init_lines(model, skeleton, copied, " " * 8) or [" " * 8 + "pass"]
    forward, imports, aliases = _forward(traced, skeleton, functions)
    sources, source_imports = copied_source(copied | set(functions))
    sources += aliases
    imports = sorted(set(imports) | source_imports - {"import torch", "from torch import nn"})
    if copied:
        sources.append(_RESTORE)
    forward = "\n".join(("    " + line) if line else "" for line in forward.splitlines())
    text = _TEMPLATE.format(
        about=literal(title),
        class_names="None"
        if class_names is None
        else "[" + ", ".join(literal(str(n)) for n in class_names) + "]",
        cls=class_name,
        init="\n".join(init),
        forward=forward,
        shape=input_shape,
        imports="".join(f"\n{line}" for line in imports) + ("\n" if imports else ""),
        copied="".join(f"\n\n{text}\n" for text in sources),
    )
    compile(text, f"<{class_name}>", "exec")  # a syntax error here is an archspec bug
    return text
