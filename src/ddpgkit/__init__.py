"""ddpgkit: the neural networks DDPG uses as function approximators, and DDPG built on them.

The public API; docs/ARCHITECTURE.md maps every module. No module of the package imports this one.
The names below are loaded when first used (PEP 562), so ``import ddpgkit.analysis.report`` reads run
directories without importing torch.
"""

from importlib import import_module

from ._version import __version__

_EXPORTS = {
    "DDPG": "agents.ddpg", "DDPGConfig": "config.ddpg", "PRESETS": "config.presets", "Batch": "data.buffer",
    "ReplayBuffer": "data.buffer", "Callback": "training.loop", "Trainer": "training.loop",
    "actor_loss": "algo.ddpg", "critic_loss": "algo.ddpg", "soft_update": "algo.ddpg", "td_target": "algo.ddpg",
    "MLP": "nn.mlp", "count_parameters": "nn.mlp", "Actor": "nn.actor_critic", "Critic": "nn.actor_critic",
    "Dataset": "nn.fitting", "FitResult": "nn.fitting", "fit": "nn.fitting", "load_csv": "nn.fitting",
    "make_dataset": "nn.fitting",
    "FitReport": "experiments.chapter", "run_fit": "experiments.chapter",
    "Experiment": "experiments.run", "RunResult": "experiments.run", "prepare_experiment": "experiments.run",
    "resume_experiment": "experiments.run", "run_experiment": "experiments.run",
    "load_latest": "experiments.run", "DDPGGroup": "agents.group",
    "resolve_config": "config.resolve", "ResolvedConfig": "config.resolve",
    "run_workers": "experiments.workers", "prepare_workers": "experiments.workers",
    "resume_workers": "experiments.workers",
    "Episode": "envs.episodes", "episode_returns": "envs.episodes",
    "SweepSpec": "experiments.sweep", "run_sweep": "experiments.sweep", "make_report": "analysis.report",
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
