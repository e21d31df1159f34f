"""The recipe's fields reach the loop: optimizers, gradient clipping, augmentation of the demo
sets when asked, and the names users and checks rely on."""

import math

import pytest
import torch
from pydantic import ValidationError

from archspec.spec import load_spec
from archspec.train import loop
from archspec.train.config import Augment, Data, Training
from archspec.train.data import load_dataset

from .test_distributed import PLAIN


def test_recipe_field_names_and_defaults():
    recipe = Training()
    assert recipe.augment is None and recipe.ema is None and recipe.clip_grad is None
    assert recipe.compile is False and recipe.test_size_ratio is None
    assert Augment().model_dump() == {
        "crop": "random_resized", "flip": True, "policy": "none",
        "mixup": 0.0, "cutmix": 0.0, "erasing": 0.0,
    }  # fmt: skip
    with pytest.raises(ValidationError):
        Training(augment={"crop": "random"})
    with pytest.raises(ValidationError):
        Training(optimizer="lamb")


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop"])
def test_every_optimizer_with_clipping_and_augmentation_trains(optimizer, monkeypatch):
    clipped = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, m: clipped.append(m) or real(p, m)
    )
    recipe = Training(
        epochs=1, batch_size=32, lr=0.01, optimizer=optimizer, clip_grad=0.5, precise_bn=64,
        augment=Augment(crop="random_resized", policy="trivialaugment", mixup=0.2, cutmix=1.0,
                        erasing=0.25),
    )  # fmt: skip
    data = load_dataset(Data(dataset="digits", limit=200), seed=0)
    torch.manual_seed(0)
    from archspec.compile import build

    model = build(load_spec(PLAIN))
    result = loop.train(model, data.split((8, 8), 1, "cpu", recipe), recipe,
                        device=torch.device("cpu"), seed=0)  # fmt: skip
    assert math.isfinite(result.epochs[0].train_loss) and clipped == [0.5] * (120 // 32)
    if optimizer == "rmsprop":
        opt = loop._optimizer(model, recipe)
        assert isinstance(opt, torch.optim.RMSprop)
        assert opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == pytest.approx(0.0316, 1e-2)


def test_compile_true_trains_through_torch_compile_and_changes_no_result(monkeypatch, tmp_path):
    """`training.compile: true` steps the torch.compile'd module (compiling itself costs ~40 s
    on CPU, so torch.compile is replaced by a recorder here) and validates the model itself."""
    import torch

    import archspec
    from archspec.train.config import Data, Training
    from archspec.train.fit import fit

    compiled = []

    def record(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", record)
    spec = archspec.load_spec("search/bases/tiny_effnet.yaml")
    data = Data(dataset="digits", limit=200)
    plain = fit(spec, data, Training(epochs=1, batch_size=50, threads=1), tmp_path / "a")
    assert compiled == []
    fast = fit(
        spec, data, Training(epochs=1, batch_size=50, threads=1, compile=True), tmp_path / "b"
    )
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)
    assert fast.train.accuracy == plain.train.accuracy  # the same steps on the same module
