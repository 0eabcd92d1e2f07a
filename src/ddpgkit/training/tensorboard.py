"""An optional TensorBoard sink: every metrics row also as TensorBoard scalars. metrics.csv stays the
record every command reads; this only mirrors it for people who watch runs in TensorBoard
(``pip install 'ddpgkit[tensorboard]'``; ``tensorboard --logdir RUN/tensorboard``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..algo.health import ROW_SIGNALS, UPDATE_SIGNALS
from ..errors import ConfigError
from .loop import Callback, Trainer

# metrics.csv column -> TensorBoard tag (grouped into sections)
TAGS = {
    "episode_return": "return/episode", "episode_length": "episode/length", "episodes": "episode/count",
    "eval_mean": "return/evaluation_mean", "eval_std": "return/evaluation_std",
    "eval_q_mean": "critic/eval_q_mean", "eval_mc_return": "critic/eval_mc_return", "eval_q_gap": "critic/eval_q_gap",
    "critic_loss": "loss/critic", "actor_loss": "loss/actor", "q_mean": "critic/q_mean",
    "steps_per_s": "speed/steps_per_s", "wall_s": "speed/wall_s",
    **{name: f"health/{name}" for name in (*UPDATE_SIGNALS, *ROW_SIGNALS)},
}


class TensorBoardSink(Callback):
    """Writes every metrics row's values to a TensorBoard event file in ``log_dir`` (step = env steps).

    ``purge_step``: a resumed run's first step after its checkpoint; TensorBoard then hides every event of
    the log directory at or after that step written before (the timeline of the attempt that was cut short
    after the checkpoint), as ``SummaryWriter(purge_step=)`` does."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # the optional extra, imported when asked for
        except ImportError:
            raise ConfigError("--tensorboard needs TensorBoard: pip install 'ddpgkit[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def on_metrics(self, trainer: Trainer, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key in TAGS and value is not None:
                self.writer.add_scalar(TAGS[key], value, int(row["step"]))

    def on_training_end(self, trainer: Trainer) -> None:
        """Flush the event file."""
        self.writer.flush()

    def close(self) -> None:
        """Close the event file."""
        self.writer.close()
