"""Several seeds in one process: N independent DDPG agents of one config, trained together.

    group = DDPGGroup.create("Pendulum-v1", DDPGConfig.preset("pendulum"), seeds=range(10))
    group.learn_until(20_000)
    group.members[3].evaluate()          # each member is an ordinary DDPG agent

Each member keeps everything of its own — initial weights (seeded as a single run of its seed),
optimiser state, replay buffer, noise, env, generators, training loop — but its networks' parameters
and Adam moments are views of tensors stacked (N, ...) here (:mod:`ddpgkit.nn.stacked`). So one update
of the group is one set of batched matrix products for all N agents (the same update code as one agent,
:class:`ddpgkit.algo.learner.Update`, on (N, B, ·) batches), acting is one batched forward pass, and the
loop is the one loop (:func:`ddpgkit.training.loop.run_together`) stepping every member's env in
lockstep. Whatever reads an agent — evaluation, ``save``, checkpoints, a run directory — reads a member
as it would a single run.

Bit for bit: batched products (``bmm``) round differently from ``mm`` in the last bits, so member k does
not reproduce a single run of seed k exactly; it is an equally valid run of that seed (the same
initial weights, the same random streams), and the same group with the same seeds always gives the same
numbers (tests; benchmarks/README.md compares the two statistically).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch

from ..algo.learner import Update
from ..algo.optim import link_adam_state, stack_adam_state
from ..config.ddpg import DDPGConfig
from ..data.buffer import Batch
from ..errors import ConfigError
from ..nn.actor_critic import scale_action
from ..nn.backward import forward_with_cache
from ..nn.stacked import stack_modules
from ..training.loop import Callback, Trainer, run_together
from .ddpg import DDPG

CallbackArg = Callback | Iterable[Callback] | None


def check_groupable(configs: Sequence[DDPGConfig]) -> None:
    """The configs can train as one group: equal except for the seed, distinct seeds, the written-out
    update (the stacked update is its batched form). Raises ConfigError."""
    if not configs:
        raise ConfigError("a group needs at least one seed")
    first = configs[0].to_dict()
    for c in configs[1:]:
        d = c.to_dict()
        diff = [k for k in first if k != "seed" and first[k] != d[k]]
        if diff:
            raise ConfigError(f"a group's agents share one config, but {diff[0]} differs "
                              f"({first[diff[0]]!r} and {d[diff[0]]!r})")
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"a group's seeds must differ, got {seeds}")
    if configs[0].backward != "handwritten":
        raise ConfigError("a group of seeds trains with the written-out update; backward = autograd is for one run")
    if configs[0].compile:
        raise ConfigError("a group of seeds does not compile its update (compile = true is for one run)")


class DDPGGroup(Update):
    """N DDPG agents (``members``) of one config and env, trained in lockstep with stacked networks.

    Args:
        members: ordinary :class:`~ddpgkit.DDPG` agents whose configs differ only in the seed, fresh
            or loaded (:meth:`DDPG.load <ddpgkit.agents.ddpg.DDPG.load>`) at the same training step. Their
            current weights and optimiser states are copied into the stacked tensors, and from then on
            the members' own tensors are views of those; train them through the group.
    """

    def __init__(self, members: Sequence[DDPG]) -> None:
        members = list(members)
        check_groupable([m.config for m in members])
        envs = {(m.env_id, m.obs_dim, m.act_dim, tuple(m.action_low.tolist()), tuple(m.action_high.tolist()))
                for m in members}
        if len(envs) != 1:
            raise ConfigError("a group's agents must train on the same env (id, dimensions, action bounds)")
        for m in members:
            if m.trainer is None:
                m.trainer = Trainer(m)
        trainers = [m.trainer for m in members]
        if len({(t.step, m.num_updates) for t, m in zip(trainers, members)}) != 1:
            raise ConfigError("a group's agents must be at the same step: "
                              + ", ".join(f"seed {m.config.seed} at {m.num_timesteps}" for m in members))
        self.members = members
        self.config = members[0].config
        self.device = members[0].device
        self.env_id = members[0].env_id
        self.action_low, self.action_high = members[0].action_low, members[0].action_high
        self.actor = stack_modules([m.actor for m in members])
        self.critic = stack_modules([m.critic for m in members])
        self.actor_target = stack_modules([m.actor_target for m in members])
        self.critic_target = stack_modules([m.critic_target for m in members])
        self._bind_networks((len(members),))
        try:
            stack_adam_state(self.actor_optimizer, [m.actor_optimizer for m in members])
            stack_adam_state(self.critic_optimizer, [m.critic_optimizer for m in members])
        except ValueError as e:
            raise ConfigError(f"cannot group these agents: {e}") from None
        self._linked = bool(self.critic_optimizer.state)
        self.num_updates = members[0].num_updates
        self._last_actor_loss = torch.stack([m._last_actor_loss for m in members])  # (N,)
        # the members' sums of (critic loss, actor loss, mean Q) since their last metrics row, stacked
        self._acc = torch.stack([torch.stack(t._acc) for t in trainers])  # (N, 3)
        for k, t in enumerate(trainers):
            t._acc = list(self._acc[k].unbind())
        # and their health records (algo.health): (N, 9), each member's a view of its row
        self.health.copy_(torch.stack([m.health for m in members]))
        for k, m in enumerate(members):
            m.health = self.health[k]

    @classmethod
    def create(cls, env: str | gym.Env, config: DDPGConfig | None = None,
               seeds: Iterable[int] = range(10)) -> DDPGGroup:
        """A fresh group: one agent per seed, each built exactly as ``DDPG(env, config, seed=s)`` (a
        Gymnasium env object is only used for its spec: every member makes its own instance)."""
        seeds = list(seeds)
        if not seeds:
            raise ConfigError("a group needs at least one seed")
        if isinstance(env, gym.Env):
            if env.spec is None:
                raise ConfigError("a group makes one env per seed; give a registered env id")
            env = env.spec.id
        return cls([DDPG(env, config, seed=s) for s in seeds])

    @property
    def seeds(self) -> list[int]:
        """The members' seeds, in order."""
        return [m.config.seed for m in self.members]

    @property
    def num_timesteps(self) -> int:
        """Environment steps trained so far by each member."""
        return self.members[0].num_timesteps

    @property
    def at_episode_boundary(self) -> bool:
        """True when every member is between two episodes (an exact resume point for all of them)."""
        return all(m.trainer is not None and m.trainer.at_episode_boundary for m in self.members)

    # ---- acting and learning ------------------------------------------------------------------

    def _policy(self, observations: Sequence[np.ndarray], noise: bool) -> list[np.ndarray]:
        with torch.inference_mode():
            obs = torch.as_tensor(np.stack(observations).astype(np.float32, copy=False), device=self.device)
            tanh_out, _ = forward_with_cache(self.actor.net, obs[:, None, :])  # (N, 1, act_dim)
            action = scale_action(tanh_out[:, 0], *self._action_scale_bias)  # (N, act_dim)
            if action.device.type != "cpu":
                action = action.cpu()
            if noise:
                sampled = torch.stack([m.noise.draw() for m in self.members])  # (N, act_dim)
                action = torch.clamp(action + sampled, self.action_low, self.action_high)
            return list(action.numpy())

    def act(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """μ_k(s_k) of every member k for its observation (obs_dim,), in one batched forward pass."""
        return self._policy(observations, noise=False)

    def explore(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every member's training action clip(μ_k(s_k) + noise_k), each with its own noise."""
        return self._policy(observations, noise=True)

    def sample(self, batch_size: int) -> Batch:
        """One batch from each member's own buffer (with its own generator), stacked: (N, B, ·)."""
        buffers = [m.buffer for m in self.members]
        return buffers[0].split(torch.stack([b.sample_rows(batch_size) for b in buffers]))  # (N, B, width)

    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG update of every member on its slice of a stacked batch (:meth:`sample`); returns
        (critic loss, actor loss, mean Q) per member, each (N,)."""
        out = super().update(batch)
        for m in self.members:
            m.num_updates = self.num_updates
        if not self._linked:  # the first step created the stacked Adam state: the members see their slices
            self._linked = (link_adam_state(self.critic_optimizer, [m.critic_optimizer for m in self.members])
                            and link_adam_state(self.actor_optimizer, [m.actor_optimizer for m in self.members]))
        return out

    def _members(self) -> list[str]:
        return [f"seed {s}" for s in self.seeds]

    def _update_step(self) -> None:
        self._acc += torch.stack(self.update(self.sample(self.config.batch_size)), dim=1)  # (N, 3)

    def learn_until(self, total_steps: int, callbacks: Sequence[CallbackArg] | None = None) -> DDPGGroup:
        """Train every member until ``total_steps`` environment steps in all. ``callbacks``: one entry
        per member (its callbacks see that member's trainer, as a single run's do)."""
        cbs = list(callbacks) if callbacks is not None else [None] * len(self.members)
        if len(cbs) != len(self.members):
            raise ValueError(f"{len(cbs)} callback entries for {len(self.members)} members")
        trainers = [m.trainer for m in self.members]
        run_together(trainers, total_steps, cbs, self.explore, self._update_step)
        return self

    def learn(self, total_timesteps: int) -> DDPGGroup:
        """Train ``total_timesteps`` more environment steps per member."""
        return self.learn_until(self.num_timesteps + total_timesteps)
