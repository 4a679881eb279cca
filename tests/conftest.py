"""Suite-wide settings: one intra-op thread. The models under test are tiny, and on a shared
2-core machine two threads make their small convolutions 10–40× slower, not faster."""
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Named by module fixtures that must build their models on one thread."""
    torch.set_num_threads(1)
    yield
