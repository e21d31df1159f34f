"""Layer names become module attributes and names in the generated forward: every name that
cannot is refused at validation, located; the table needs no torch and covers torch's."""

import keyword

import pytest

import archspec
from archspec.errors import SpecValidationError
from archspec.spec.model import MODULE_ATTRIBUTES


def spec_with_layer(name: str) -> str:
    return (
        "name: t\ninput: {channels: 3, size: 8}\nlayers:\n"
        f"  - {{op: conv2d, name: '{name}', out_channels: 4, kernel_size: 1}}\n"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("class", "'class' is a Python keyword; it cannot name a layer (try 'class_')"),
        ("None", "'None' is a Python keyword; it cannot name a layer (try 'None_')"),
        ("self", "'self' is a Python keyword; it cannot name a layer (try 'self_')"),
        (
            "training",
            "'training' is an attribute of torch.nn.Module; a layer of that name would replace "
            "it (try 'training_')",
        ),
        (
            "_forward_hooks",
            "'_forward_hooks' is an attribute of torch.nn.Module; a layer of that name would "
            "replace it (try 'forward_hooks_')",
        ),
        ("meta", "'meta' is an attribute of torch.nn.Module"),
        ("__init__", "'__init__' is an attribute of torch.nn.Module"),
    ],
)
def test_names_that_cannot_be_layers_are_refused_at_validation(name, message):
    with pytest.raises(SpecValidationError) as info:
        archspec.load_spec(spec_with_layer(name))
    problem = info.value.problems[0]
    assert (problem.location.line, problem.location.column) == (4, 24)
    assert problem.message.startswith(f"layers.0.name: {message}")


def test_every_python_keyword_and_graph_module_attribute_is_covered():
    import torch
    from torch import fx

    graph = fx.Graph()
    graph.output(graph.placeholder("x"))
    module = fx.GraphModule(torch.nn.Module(), graph)
    attributes = set(dir(module)) | set(vars(module))
    missing = {a for a in attributes if not (a.startswith("__") and a.endswith("__"))}
    assert missing <= MODULE_ATTRIBUTES
    for word in keyword.kwlist:
        with pytest.raises(SpecValidationError):
            archspec.load_spec(spec_with_layer(word))


def test_names_torch_accepts_build_and_keep_their_state_dict_keys():
    import torch

    text = spec_with_layer("block1-0") + (
        "  - {op: relu, name: torch}\n  - {op: conv2d, name: '2x', kernel_size: 1}\n"
    )
    model = archspec.build(text)
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    assert sorted(model.state_dict()) == [
        "2x.bias",
        "2x.weight",
        "block1-0.bias",
        "block1-0.weight",
    ]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "options:\n  in_channels: {type: int, default: 5}\n",
            "options",
            "option 'in_channels' is a name archspec defines in every scope",
        ),
        (
            "blocks:\n  b:\n    params: {index: {type: int, default: 7}}\n    layers: [{op: relu}]\n",
            "blocks.b.params",
            "block parameter 'index' is a name archspec defines in every scope",
        ),
    ],
)
def test_options_and_params_cannot_take_names_every_scope_defines(text, where, message):
    """They would be silently shadowed: `$in_channels` is always the input's channels."""
    spec = "name: t\ninput: {channels: 3, size: 8}\n" + text + "layers:\n  - {op: relu}\n"
    with pytest.raises(SpecValidationError, match=f"{where}: {message}"):
        archspec.load_spec(spec)
