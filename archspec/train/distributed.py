"""One network trained by several processes (DistributedDataParallel): `archspec train --nproc
N` starts N copies of itself through torch's elastic launcher (as `torchrun -m archspec train`
does), and each copy joins the process group here. The loop (archspec/train/loop.py) gives each
process its share of every batch; rank 0 alone writes files."""

from __future__ import annotations

import os
import subprocess
import sys

from archspec.errors import SearchError


def launched() -> bool:
    """Whether this process is one of several started by torchrun or `--nproc`."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank among those torchrun started (0 when alone)."""
    return int(os.environ.get("RANK", "0"))


def join(device: str = "auto") -> None:
    """Join the process group torchrun described in the environment: NCCL on CUDA, gloo on
    the CPU. Nothing to do in a single process."""
    if not launched():
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """Run `archspec <argv>` in `nproc` processes on this machine (torch.distributed.run,
    standalone rendezvous); their exit status."""
    if launched():
        raise SearchError("--nproc: already one of several processes (started by torchrun)")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", "archspec", *argv,
    ]  # fmt: skip
    return subprocess.run(command, check=False).returncode
