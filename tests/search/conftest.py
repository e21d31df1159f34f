"""Tiny search definitions written into tmp_path: a few hundred digits, one or two epochs."""

from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASES = ROOT / "search" / "bases"

TINY = {
    "study": "tiny",
    "base": str(BASES / "tiny_effnet.yaml"),
    "mode": "free",
    "space": {"width": {"low": 0.5, "high": 1.0, "step": 0.25}, "kernels": {"stage3": [3, 5]}},
    "data": {"dataset": "digits", "limit": 300},
    "training": {"epochs": 1, "batch_size": 64, "lr": 0.005, "precise_bn": 128},
    "latency": {"warmup": 1, "repeats": 2},
    "evaluation": {"seeds": 0},
    "sampler": "random",
    "trials": 3,
    "seed": 0,
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and a busy machine makes OpenMP's
    barriers wait a scheduler tick each: one thread keeps these tests fast anywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_def(tmp_path, monkeypatch):
    """write_def(**changes) -> path of a tiny definition; runs/ goes into tmp_path."""
    monkeypatch.chdir(tmp_path)

    def write(name: str = "tiny", **changes) -> Path:
        data = merge(TINY, {"study": name, **changes})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
