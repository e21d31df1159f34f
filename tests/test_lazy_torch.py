"""validate, lint and schema never import torch: editors and pre-commit hooks call them often."""

import subprocess
import sys

COMMANDS = [
    ["validate", "specs/resnet50.yaml", "vit_b_16"],
    ["lint", "specs/efficientnet_b0.yaml"],
    ["schema"],
    ["summary", "resnet18"],
]

CHECK = """
import sys
from archspec.cli import main
for args in {commands!r}:
    sys.argv = ["archspec", *args]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
    print("torch" in sys.modules, *args)
"""


def test_validate_lint_schema_summary_do_not_import_torch():
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(commands=COMMANDS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    seen = [line for line in result.stdout.splitlines() if line.startswith(("True", "False"))]
    assert seen == [" ".join(["False", *args]) for args in COMMANDS]


def test_import_archspec_is_torch_free_until_a_module_is_built():
    code = (
        "import sys, archspec\n"
        "spec = archspec.load_spec('specs/resnet18.yaml')\n"
        "archspec.build_graph(spec); archspec.analyze(spec)\n"
        "print('torch' in sys.modules)\n"
        "archspec.build\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_public_names_are_the_functions_even_after_their_modules_are_imported():
    import archspec.analysis
    import archspec.scaling
    import archspec.spec

    assert callable(archspec.scale) and callable(archspec.analyze) and callable(archspec.load_spec)
