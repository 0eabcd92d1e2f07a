"""Several seeds in one process: N DDPG agents of one config, trained together — and a single run is a group
of one.

    group = DDPGGroup.create("Pendulum-v1", DDPGConfig.preset("pendulum"), seeds=range(10))
    group.learn(20_000)
    group.members[3].evaluate()          # each member is an ordinary DDPG agent

Each member keeps everything of its own — initial weights (seeded as a single run of its seed),
optimiser state, replay buffer, noise, env, generators, training loop — but for N ≥ 2 its networks'
parameters and Adam moments are views of tensors stacked (N, ...) by one learner
(:meth:`ddpgkit.algo.learner.Learner.stacked`, :mod:`ddpgkit.nn.stacked`). So one update of the group is
the one update sequence on (N, B, ·) batches, one set of batched matrix products for all N agents; acting is
one batched forward pass; and the loop is the one loop (:func:`ddpgkit.training.loop.train_loop`) stepping
every member's env in lockstep. Whatever reads an agent — evaluation, ``save``, checkpoints, a run
directory — reads a member as it would a single run.

A group of one (N = 1) is its member trained alone: its own learner on (B, ·) tensors, the numbers of
``member.learn`` bit for bit. This is how every run directory trains (:mod:`ddpgkit.experiments.run`).

Bit for bit: batched products (``bmm``) round differently from ``mm`` in the last bits, so member k of a
group of N ≥ 2 does not reproduce a single run of seed k exactly; it is an equally valid run of that seed
(the same initial weights, the same random streams), and the same group with the same seeds always gives
the same numbers (tests; benchmarks/README.md compares the two statistically).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch

from ..algo.ddpg import exploration_action
from ..algo.learner import Learner
from ..config.ddpg import DDPGConfig
from ..data.buffer import Batch
from ..errors import ConfigError, NonFiniteUpdate
from ..nn.actor_critic import scale_action
from ..nn.backward import forward_with_cache
from ..nn.normalize import normalize_stacked
from ..training.loop import Callback, Trainer, learn_target, train_loop
from .ddpg import DDPG

CallbackArg = Callback | Iterable[Callback] | None


def check_groupable(configs: Sequence[DDPGConfig]) -> None:
    """The configs can train as one group: equal except for the seed, distinct seeds; for two or more, the
    written-out update uncompiled (the stacked update is its batched form). One config always can (a group
    of one is a single run). Raises ConfigError."""
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
    if len(configs) > 1 and not stackable(configs[0]):
        what = "backward = autograd" if configs[0].backward != "handwritten" else "compile = true"
        raise ConfigError(f"a group of seeds trains with the written-out update, uncompiled; {what} is for one run")


def stackable(config: DDPGConfig) -> bool:
    """Whether seeds of ``config`` can train stacked in a group of two or more: the written-out update,
    uncompiled."""
    return config.backward == "handwritten" and not config.compile


class DDPGGroup:
    """N DDPG agents (``members``) of one config and env, trained in lockstep; for N ≥ 2 with stacked networks.

    Args:
        members: ordinary :class:`~ddpgkit.DDPG` agents whose configs differ only in the seed, fresh
            or loaded (:meth:`DDPG.load <ddpgkit.agents.ddpg.DDPG.load>`) at the same training step. For
            N ≥ 2 their current weights and optimiser states are copied into the stacked tensors, and from
            then on the members' own tensors are views of those; train them through the group.
        retired: indices of members that diverged earlier (a resumed group): they keep their place in the
            stack, frozen, so that the others compute what they computed before (at any step of their own).

    A member whose update turns non-finite is retired (:attr:`Learner.retired
    <ddpgkit.algo.learner.Learner.retired>`): it stops learning and acting, its trainer hears of it
    (``Callback.on_diverged``), and the others go on with exactly the numbers they would have had: every
    batched product is per member, and a retired member's slice only ever sees a zero batch and zero gradients.
    """

    def __init__(self, members: Sequence[DDPG], retired: Iterable[int] = ()) -> None:
        members = list(members)
        retired = sorted(set(retired))
        check_groupable([m.config for m in members])
        envs = {(m.env_id, m.obs_layout, m.act_dim, tuple(m.action_low.tolist()), tuple(m.action_high.tolist()))
                for m in members}
        if len(envs) != 1:
            raise ConfigError("a group's agents must train on the same env (id, dimensions, action bounds)")
        for m in members:
            if m.trainer is None:
                m.trainer = Trainer(m)
        trainers = [m.trainer for m in members]
        active = [k for k in range(len(members)) if k not in retired]
        if not active:
            raise ConfigError("a group needs a member that has not diverged")
        if len({(trainers[k].step, members[k].learner.num_updates) for k in active}) != 1:
            raise ConfigError("a group's agents must be at the same step: "
                              + ", ".join(f"seed {m.config.seed} at {m.num_timesteps}" for m in members))
        for k in retired:
            trainers[k].retired = True
        self.members = members
        self.config = members[0].config
        self.device = members[0].device
        self.env_id = members[0].env_id
        self.action_low, self.action_high = members[0].action_low, members[0].action_high
        if len(members) == 1:  # a group of one is its member: its own (B, ·) update, a single run's numbers
            self.learner = members[0].learner
            return
        try:
            self.learner = Learner.stacked([m.learner for m in members], [f"seed {m.config.seed}" for m in members],
                                           retired)
        except ValueError as e:
            raise ConfigError(f"cannot group these agents: {e}") from None
        # the members' sums of (critic loss, actor loss, mean Q) since their last metrics row, stacked
        self._acc = torch.stack([torch.stack(t.acc) for t in trainers])  # (N, 3)
        for k, t in enumerate(trainers):
            t.acc = list(self._acc[k].unbind())

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
        """Environment steps trained so far by each member still training (a retired one stopped earlier)."""
        training = [m for m in self.members if m.trainer is None or not m.trainer.retired]
        return (training or self.members)[0].num_timesteps

    @property
    def at_episode_boundary(self) -> bool:
        """True when every member still training is between two episodes (an exact resume point for all of them;
        a retired member no longer steps)."""
        return all(m.trainer is not None and (m.trainer.at_episode_boundary or m.trainer.retired)
                   for m in self.members)

    # ---- acting and learning ------------------------------------------------------------------

    def _policy(self, observations: Sequence[np.ndarray], noise: bool) -> list[np.ndarray]:
        """Every member k's μ_k(s_k), with ``noise`` its exploration action clip(μ_k(s_k) + noise_k), in one
        batched forward pass of the stacked actors (a group of one: its member's own)."""
        if len(self.members) == 1:
            member = self.members[0]
            return [member.explore(observations[0]) if noise else member.act(observations[0])]
        observations = [m.obs_layout.flatten_batch(o) for m, o in zip(self.members, observations)]
        with torch.inference_mode():
            obs = torch.as_tensor(np.stack(observations).astype(np.float32, copy=False), device=self.device)
            actor = self.learner.nets.actor
            if self.members[0].obs_norm is not None:  # each member's observation by its own statistics
                obs = normalize_stacked(obs, [m.obs_norm for m in self.members])
            tanh_out, _ = forward_with_cache(actor.net, obs[:, None, :])  # (N, 1, act_dim)
            action = scale_action(tanh_out[:, 0], actor.action_scale, actor.action_bias)  # (N, act_dim)
            if action.device.type != "cpu":
                action = action.cpu()
            if noise:
                drawn = torch.stack([m.noise.draw() for m in self.members])  # (N, act_dim)
                action = exploration_action(action, drawn, self.action_low, self.action_high)
                retired = self.learner.retired  # a retired member's generators stay as they were
                return [a if k in retired else m.random_instead(a) for k, (m, a) in enumerate(zip(self.members,
                                                                                                action.numpy()))]
            return list(action.numpy())

    def act(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """μ_k(s_k) of every member k for its observation (obs_dim,), in one batched forward pass."""
        return self._policy(observations, noise=False)

    def explore(self, observations: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every member's training action clip(μ_k(s_k) + noise_k), each with its own noise."""
        return self._policy(observations, noise=True)

    def sample(self, batch_size: int) -> Batch:
        """One batch from each member's own buffer (with its own generator), stacked: (N, B, ·) — a retired
        member's all zeros; a group of one: its member's batch, (B, ·)."""
        buffers = [m.buffer for m in self.members]
        if len(buffers) == 1:
            return buffers[0].sample(batch_size)
        retired = self.learner.retired
        rows = [torch.zeros(batch_size, b.sample_width, device=b.device) if k in retired else b.sample_rows(batch_size)
                for k, b in enumerate(buffers)]
        return buffers[0].split(torch.stack(rows))  # (N, B, width)

    def normalize_batch(self, batch: Batch) -> Batch:
        """A stacked batch (N, B, ·) with each member's observations normalized by its own statistics (``obs_norm``;
        a group of one: its member's :meth:`~ddpgkit.agents.ddpg.DDPG.normalize_batch`)."""
        if len(self.members) == 1:
            return self.members[0].normalize_batch(batch)
        if self.members[0].obs_norm is None:
            return batch
        norms = [m.obs_norm for m in self.members]
        return batch._replace(obs=normalize_stacked(batch.obs, norms),
                              next_obs=normalize_stacked(batch.next_obs, norms))

    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG update of every member on its slice of a stacked batch (:meth:`sample`); returns
        (critic loss, actor loss, mean Q) per member, each (N,) (a group of one: 0-d). Networks changed since the
        group was made are refused as :meth:`DDPG.update <ddpgkit.agents.ddpg.DDPG.update>` refuses them."""
        self.learner.check_networks()
        return self.learner.update(batch)

    def close(self) -> None:
        """Close every member's envs (:meth:`DDPG.close <ddpgkit.agents.ddpg.DDPG.close>`); also ``with``."""
        for m in self.members:
            m.close()

    def __enter__(self) -> DDPGGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def learn(self, total_timesteps: int | None = None, callback: CallbackArg = None) -> DDPGGroup:
        """Train every member ``total_timesteps`` more environment steps, as :meth:`DDPG.learn
        <ddpgkit.agents.ddpg.DDPG.learn>` does (None: until ``config.total_steps``). ``callback`` sees every
        member: each hook is called once per member, with that member's trainer (``trainer.agent`` is the
        member); one that returns False from ``on_step`` stops them all."""
        return self.learn_until(learn_target(self.num_timesteps, self.config, total_timesteps), callback)

    def learn_until(self, total_steps: int, callback: CallbackArg = None,
                    member_callbacks: Sequence[CallbackArg] | None = None) -> DDPGGroup:
        """Train every member until ``total_steps`` environment steps in all. ``callback``: as in :meth:`learn`;
        ``member_callbacks``: one entry per member, seen by that member only (its run directory's writers)."""
        shared = [callback] if isinstance(callback, Callback) else list(callback or [])
        own = list(member_callbacks) if member_callbacks is not None else [None] * len(self.members)
        if len(own) != len(self.members):
            raise ValueError(f"{len(own)} member callback entries for {len(self.members)} members")
        cbs = [shared + ([c] if isinstance(c, Callback) else list(c or [])) for c in own]
        if len(self.members) == 1:
            self.members[0].learn_until(total_steps, cbs[0])
            return self
        self.learner.check_networks()
        trainers = [m.trainer for m in self.members]
        train_loop(trainers, total_steps, cbs, self.explore, self._update_step)
        return self

    def _update_step(self) -> None:
        try:
            losses = self.learner.update(self.normalize_batch(self.sample(self.config.batch_size)))
        except NonFiniteUpdate as e:  # the last members diverged: each but the one the error names is said here
            self._retire(skip=e.member)
            raise
        self._acc += torch.stack(losses, dim=1)  # (N, 3)
        self._retire()

    def _retire(self, skip: int | None = None) -> None:
        """Tell the trainer of each member whose update just turned non-finite (retired by the learner) that it
        has diverged, once (``skip``: the member whose error the training loop raises instead)."""
        for event in self.learner.pop_retired():
            if event.member == skip:
                continue
            trainer = self.members[event.member].trainer
            trainer.retire(NonFiniteUpdate(event.signal, event.batch, trainer.step, event.member))
