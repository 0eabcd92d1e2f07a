"""``ddpgkit eval``: evaluate a run's checkpoint, optionally recording an episode as a GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from ..agents.ddpg import DDPG
from ..agents.export import ExportedPolicy, check_contract
from ..config.seeds import EVAL_SEED_OFFSET
from ..envs.episodes import success_rate
from ..envs.render import record_episode
from ..errors import RunError
from ..storage.manifest import read_manifest
from ..storage.rundir import best_checkpoint_dir, latest_checkpoint
from .app import UserError, app, print_kv


@app.command("eval")
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `ddpgkit train`."),
    episodes: int = typer.Option(10, help="Deterministic episodes to run."),
    seed: int | None = typer.Option(None, help="Seed of episode 0 (episode i uses seed + i) "
                                    "[default: the run's evaluation seeds, as in summary.json]."),
    gif: Path | None = typer.Option(None, "--gif", help="Also write an animation of the first episode (GIF)."),
    checkpoint: Path | None = typer.Option(None, help="A checkpoint directory [default: the run's latest]."),
    device: str | None = typer.Option(None, help="Device to run the actor on [default: the run's]."),
    policy: Path | None = typer.Option(None, "--policy", help="Run this exported policy (`ddpgkit export`: ONNX "
                                       "through onnxruntime, or TorchScript) instead of the checkpoint's actor, on "
                                       "the same env and seeds; its contract is checked against the env first."),
) -> None:
    """Evaluate a trained run: mean ± std return of deterministic episodes (and a goal env's success rate)."""
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if not run_dir.exists():
        raise RunError(f"{run_dir}: no such run directory")
    ckpt = checkpoint if checkpoint is not None else latest_checkpoint(run_dir)
    agent = DDPG.load(ckpt, device=device, training_state=False)
    if policy is not None:  # the exported file acts; the run gives the env and the evaluation seeds
        exported = ExportedPolicy(policy)
        check_contract(exported.contract, agent.eval_env, str(policy))
        first = seed if seed is not None else agent.config.seed + EVAL_SEED_OFFSET
        ran = agent.eval_envs.run(exported, [first + i for i in range(episodes)])
        returns = np.array([e.total_reward for e in ran])
        print_kv("policy", f"{policy} ({exported.contract['format']})")
        print_kv("return", f"{returns.mean():.2f} ± {returns.std():.2f} over {episodes} episodes")
        if (rate := success_rate(ran)) is not None:
            print_kv("success", f"{rate:.2f} ({round(rate * episodes)} of {episodes} episodes)")
        return
    ran = agent.run_evaluation(episodes, seed)
    returns = np.array([e.total_reward for e in ran])
    print_kv("checkpoint", str(ckpt))
    print_kv("return", f"{returns.mean():.2f} ± {returns.std():.2f} over {episodes} episodes")
    if (rate := success_rate(ran)) is not None:  # a goal env's episodes report info["is_success"]
        print_kv("success", f"{rate:.2f} ({round(rate * episodes)} of {episodes} episodes)")
    best = best_checkpoint_dir(run_dir)
    if checkpoint is None and best.is_dir():  # the best evaluation's networks, kept beside the latest
        best_agent = DDPG.load(best, device=device, training_state=False)
        b = best_agent.evaluate(episodes, seed)
        step = read_manifest(best)["meta"].get("step")
        print_kv("best", f"{b.mean():.2f} ± {b.std():.2f} over {episodes} episodes ({best}, step {step:,})")
    if gif is not None:
        first = seed if seed is not None else agent.config.seed + EVAL_SEED_OFFSET
        path, episode = record_episode(agent.env_id, agent.act, gif, seed=first)
        print_kv("animation", f"{path} ({len(episode.frames)} frames, return {episode.total_reward:.1f})")
