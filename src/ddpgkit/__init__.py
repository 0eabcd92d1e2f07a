"""ddpgkit: the neural networks DDPG uses as function approximators, and DDPG built on them.

The public API; docs/ARCHITECTURE.md maps every module. No module of the package imports this one.
"""

from . import envs as _envs  # noqa: F401  (registers the ddpgkit/... environments)
from ._version import __version__
from .agent import DDPG
from .algo.ddpg import actor_loss, critic_loss, soft_update, td_target
from .config import PRESETS, DDPGConfig
from .data.buffer import Batch, ReplayBuffer
from .experiments.fit import FitReport, run_fit
from .experiments.run import Experiment, RunResult, prepare_experiment, resume_experiment, run_experiment
from .fit import Dataset, FitResult, fit, load_csv, make_dataset
from .nn.actor_critic import Actor, Critic
from .nn.mlp import MLP, count_parameters
from .rollout import Episode, evaluate_policy, rollout
from .training.loop import Callback, Trainer

__all__ = [
    "DDPG", "DDPGConfig", "PRESETS", "Batch", "ReplayBuffer", "Callback", "Trainer",
    "actor_loss", "critic_loss", "soft_update", "td_target",
    "MLP", "Actor", "Critic", "count_parameters",
    "Dataset", "FitResult", "fit", "load_csv", "make_dataset", "FitReport", "run_fit",
    "Experiment", "RunResult", "prepare_experiment", "resume_experiment", "run_experiment",
    "Episode", "rollout", "evaluate_policy",
    "__version__",
]
