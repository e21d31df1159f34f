import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The tensors here are tiny: a second thread buys nothing, and on a busy machine OpenMP's
    # waiting threads made these forwards tens of times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
