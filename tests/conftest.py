"""Suite-wide settings: one intra-op thread (the models under test are tiny, and on a shared
2-core machine two threads make their small convolutions 10–40× slower, not faster), and the
``cuda`` marker: tests that need a CUDA device are marked ``@pytest.mark.cuda``, skipped
without one, and run alone by ``pytest -m cuda`` (``scripts/gpu_check.sh``)."""
import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one; `pytest -m cuda` runs them)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Named by module fixtures that must build their models on one thread."""
    torch.set_num_threads(1)
    yield
