"""`archspec train --nproc 2`: two processes (gloo, CPU) each train half of every batch and end
with the weights one process trains with the same global batch, augmented or not (each image
is augmented as one process would); files are written once."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# no BatchNorm, no dropout: per-process batch statistics (SyncBatchNorm is CUDA-only) and
# per-process dropout masks are the two things that legitimately differ between the runs
PLAIN = """\
name: plain
input: {channels: 1, size: 8}
options:
  num_classes: {type: int, default: 10}
layers:
  - {op: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {op: relu}
  - {op: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {op: relu}
  - {op: adaptive_avgpool}
  - {op: flatten}
  - {op: linear, out_features: $num_classes}
"""


def train(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "archspec", "train", "plain.yaml", "--data", "digits",
        "--limit", "400", "--epochs", "2", "--batch-size", "32", "--lr", "0.01",
        "--threads", "1", "-o", name, *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


# the streamed path with every per-image augmentation (MixUp/CutMix pair images within each
# process's share, as timm does, so they are left out of the equality)
AUGMENTED = ["training.augment.crop=random_resized", "training.augment.policy=trivialaugment",
             "training.augment.erasing=0.5"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("augment", [[], AUGMENTED], ids=["plain", "augmented"])
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, augment):
    (tmp_path / "plain.yaml").write_text(PLAIN)
    one = train(tmp_path, "one", *augment)
    two = train(tmp_path, "two", "--nproc", "2", *augment)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("validation accuracy") == 1  # rank 0 reports, alone
    a = load_file(tmp_path / "one" / "bundle" / "weights.safetensors")
    b = load_file(tmp_path / "two" / "bundle" / "weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    rows = [list(csv.DictReader((tmp_path / run / "metrics.csv").open())) for run in ("one", "two")]
    assert len(rows[1]) == 2  # written once, not once per process
    for r1, r2 in zip(*rows, strict=True):
        assert abs(float(r1["train_loss"]) - float(r2["train_loss"])) < 1e-4
        assert r1["val_accuracy"] == r2["val_accuracy"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "bundle", "checkpoint.pt", "metrics.csv"
    ]  # fmt: skip


def test_batch_not_divisible_by_the_processes_is_refused(monkeypatch):
    from archspec.errors import SearchError
    from archspec.spec import load_spec
    from archspec.train import loop
    from archspec.train.config import Data, Training
    from archspec.train.data import load_dataset

    monkeypatch.setattr(loop, "distributed_world", lambda: (2, 0))
    data = load_dataset(Data(dataset="digits", limit=200), seed=0)
    spec = load_spec(PLAIN)
    from archspec.compile import build

    with pytest.raises(SearchError, match="batch_size: 33 does not split evenly over 2"):
        loop.train(build(spec), data.split((8, 8), 1, "cpu"), Training(batch_size=33),
                   device=torch.device("cpu"), seed=0)  # fmt: skip
