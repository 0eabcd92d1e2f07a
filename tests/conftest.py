import pytest
import torch

from ddpgkit.runtime import configure_torch

# One torch thread per test process: pytest-xdist runs one worker per core, and two threads per
# process on a loaded 2-core machine collapse (see src/ddpgkit/runtime.py).
configure_torch(1)


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)
