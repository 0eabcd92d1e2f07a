"""ddpgkit: the neural networks DDPG uses as function approximators, and DDPG built on them."""

from importlib.metadata import PackageNotFoundError, version

from . import envs as _envs  # noqa: F401  (registers the ddpgkit/... environments)
from .buffer import Batch, ReplayBuffer
from .config import PRESETS, DDPGConfig
from .ddpg import DDPG, actor_loss, critic_loss, soft_update, td_target
from .fit import Dataset, FitResult, fit, load_csv, make_dataset
from .nn import MLP, Actor, Critic, count_parameters

try:
    __version__ = version("ddpgkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "DDPG", "DDPGConfig", "PRESETS", "Batch", "ReplayBuffer",
    "actor_loss", "critic_loss", "soft_update", "td_target",
    "MLP", "Actor", "Critic", "count_parameters",
    "Dataset", "FitResult", "fit", "load_csv", "make_dataset",
    "__version__",
]
