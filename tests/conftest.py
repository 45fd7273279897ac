import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fixed_global_seed():
    """Each test starts from the same global RNG state (policy initialisation); sampling uses Generators."""
    torch.manual_seed(0)
