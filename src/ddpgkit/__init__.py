"""ddpgkit: the neural networks DDPG uses as function approximators, and DDPG built on them.

The public API; docs/ARCHITECTURE.md maps every module. No module of the package imports this one.
The names below are loaded when first used (PEP 562), so ``import ddpgkit.report`` reads run
directories without importing torch.
"""

from importlib import import_module

from . import envs as _envs  # noqa: F401  (registers the ddpgkit/... environments; needs gymnasium only)
from ._version import __version__

_EXPORTS = {
    "DDPG": "agent", "DDPGConfig": "config", "PRESETS": "config", "Batch": "data.buffer",
    "ReplayBuffer": "data.buffer", "Callback": "training.loop", "Trainer": "training.loop",
    "actor_loss": "algo.ddpg", "critic_loss": "algo.ddpg", "soft_update": "algo.ddpg", "td_target": "algo.ddpg",
    "MLP": "nn.mlp", "count_parameters": "nn.mlp", "Actor": "nn.actor_critic", "Critic": "nn.actor_critic",
    "Dataset": "fitting", "FitResult": "fitting", "fit": "fitting", "load_csv": "fitting", "make_dataset": "fitting",
    "FitReport": "experiments.fit", "run_fit": "experiments.fit",
    "Experiment": "experiments.run", "RunResult": "experiments.run", "prepare_experiment": "experiments.run",
    "resume_experiment": "experiments.run", "run_experiment": "experiments.run",
    "GroupExperiment": "experiments.run", "prepare_group": "experiments.run", "resume_group": "experiments.run",
    "run_group": "experiments.run", "DDPGGroup": "group",
    "run_workers": "experiments.workers", "prepare_workers": "experiments.workers",
    "resume_workers": "experiments.workers",
    "Episode": "rollout", "evaluate_policy": "rollout",  # the function itself: ddpgkit.rollout.rollout
    "SweepSpec": "experiments.sweep", "run_sweep": "experiments.sweep", "make_report": "report",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ddpgkit' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
