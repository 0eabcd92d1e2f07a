"""The DDPG agent: its networks, replay buffer, noise and learner; acting, training, evaluation and
persistence.

``DDPG(env, config, seed=0).learn(steps)``, ``predict``, ``save`` and ``DDPG.load`` behave as in
Stable-Baselines3 where the names are shared (docs/guide/from-sb3.md). The agent *has* an
update, :attr:`DDPG.learner` (:class:`ddpgkit.algo.learner.Learner`: the paper's order of steps, with
gradients written out or by autograd), rather than being one: a group of seeds
(:class:`ddpgkit.agents.group.DDPGGroup`) trains its members through one stacked learner, while each member
stays an ordinary agent.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ..algo.ddpg import exploration_action
from ..algo.learner import Learner, Networks
from ..algo.noise import make_noise
from ..config.ddpg import DDPGConfig
from ..config.hyperparams import defaults_for
from ..config.seeds import BUFFER_SEED_OFFSET, EVAL_SEED_OFFSET, EXPLORE_SEED_OFFSET, NOISE_SEED_OFFSET
from ..data.buffer import Batch, ReplayBuffer
from ..data.her import GoalColumns, Relabeller
from ..envs.episodes import Episode, discounted_returns
from ..envs.evaluation import EvalEnvs
from ..envs.goals import GoalInterface, goal_interface
from ..envs.make import env_id as get_env_id
from ..envs.make import make_env
from ..envs.spaces import ObservationLayout
from ..errors import CheckpointError, DDPGKitError, EnvError, one_line
from ..nn.actor_critic import Actor, Critic, scale_action
from ..nn.normalize import RunningNorm
from ..runtime import GlobalGenerators, check_precision, resolve_device
from ..storage.checkpoint import CheckpointFiles, ChunkFiles, load_checkpoint, save_checkpoint
from ..storage.schema import check_meta, upgrade
from ..training.loop import Callback, Trainer, learn_target, train_loop
from ..training.state import history_chunk, history_chunks, restore_training_state
from ..training.state import training_state as collect_training_state
from .export import export_policy


class DDPG:
    """The DDPG agent.

    Args:
        env: a Gymnasium id such as ``"Pendulum-v1"`` or a ``gymnasium.Env`` with a bounded Box
            action space.
        config: hyperparameters; when None, the entry of the env's id (of a Gymnasium env object: its
            spec's id) in the hyperparameter table (:func:`ddpgkit.config.hyperparams.defaults_for`), else
            the general defaults, :class:`~ddpgkit.config.ddpg.DDPGConfig`'s.
        seed: overrides ``config.seed`` when given. The seed fixes the initial weights (drawn as after
            ``torch.manual_seed(seed)``), the env, its action space, and the buffer's, noise's and warm-up's own
            generators, and the state of the global torch, numpy and Python generators the run trains with
            (:attr:`global_generators`); the host process's own generators are left as they were.
        eval_env: the env used for evaluation; a fresh instance of ``env`` when None.
    """

    def __init__(self, env: str | gym.Env, config: DDPGConfig | None = None, seed: int | None = None,
                 eval_env: str | gym.Env | None = None) -> None:
        self.env = make_env(env)
        self._own_env = not isinstance(env, gym.Env)  # made here from an id: close() closes it
        self.env_id = get_env_id(self.env)
        if config is None:
            config = defaults_for(self.env_id).config
        if seed is not None:
            config = config.replace(seed=seed)
        self.config = config
        self.device = resolve_device(config.device)
        check_precision(config.precision, self.device)
        self.eval_envs = EvalEnvs(self.env, eval_env)
        act_space = self.env.action_space
        #: how observations become the networks' flat vectors (a Box's own, or a Dict's keys in a fixed order)
        self.obs_layout = ObservationLayout.of(self.env.observation_space)
        self.obs_dim = self.obs_layout.obs_dim
        self.act_dim = int(act_space.shape[0])
        #: a goal env's goals and reward function, which HER relabels through (``her``); None without HER
        self.goals: GoalInterface | None = (goal_interface(self.env, self.obs_layout, self.env_id or "the env")
                                            if config.her != "none" else None)
        self.action_low = torch.as_tensor(act_space.low, dtype=torch.float32)  # (act_dim,)
        self.action_high = torch.as_tensor(act_space.high, dtype=torch.float32)  # (act_dim,)

        init = config.final_layer_init or None
        with torch.random.fork_rng(devices=[]):  # the initial weights from the seed; the host's generator untouched
            torch.manual_seed(config.seed)
            actor = Actor(self.obs_dim, self.action_low, self.action_high, config.hidden, config.activation, init)
            critic = Critic(self.obs_dim, self.act_dim, config.hidden, config.activation, init,
                            config.critic_action_layer)
            # TD3's second critic (n_critics = 2), drawn after the others: their initial weights are DDPG's
            critic2 = (Critic(self.obs_dim, self.act_dim, config.hidden, config.activation, init,
                              config.critic_action_layer) if config.n_critics == 2 else None)
            #: the run's own state of the process's global generators (:class:`~ddpgkit.runtime.GlobalGenerators`)
            self.global_generators = GlobalGenerators.seeded(config.seed, torch.random.get_rng_state())
        self.actor, self.critic = actor.to(self.device), critic.to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        #: TD3's second critic Q_φ2 and its target (``n_critics = 2``), else None
        self.critic2 = critic2.to(self.device) if critic2 is not None else None
        self.critic2_target = copy.deepcopy(self.critic2).requires_grad_(False) if self.critic2 is not None else None
        #: observation normalization (``obs_norm``): the running statistics of the observations collected, applied
        #: before the networks wherever they read an observation (:meth:`normalize`); None when off
        self.obs_norm = RunningNorm(self.obs_dim, config.obs_clip).to(self.device) if config.obs_norm else None
        #: the update of the networks, with their optimisers (:class:`~ddpgkit.algo.learner.Learner`)
        self.learner = Learner(Networks(self.actor, self.critic, self.actor_target, self.critic_target, self.critic2,
                                        self.critic2_target), config)
        self._buffer: ReplayBuffer | None = None  # allocated when first needed (training): see buffer
        self.buffer_chunks = ChunkFiles("buffer")  # which checkpoint files hold the buffer's chunks (save)
        self.history_chunks = ChunkFiles("history")  # and the metrics history's
        self.noise = make_noise(config.noise, config.noise_scale * self.actor.action_scale.cpu(),
                                theta=config.ou_theta, dt=config.ou_dt, seed=config.seed + NOISE_SEED_OFFSET)
        self.explore_generator = torch.Generator().manual_seed(config.seed + EXPLORE_SEED_OFFSET)
        self.trainer: Trainer | None = None
        self._saved_step = 0  # the step of the checkpoint a model-only load came from (num_timesteps)
        self._eval_layout_checked = False  # run_evaluation: the eval env reads as the training env

    @property
    def buffer(self) -> ReplayBuffer:
        """The replay buffer (``config.buffer_size`` transitions), allocated on first use: an agent that only
        acts or evaluates (``DDPG.load(..., training_state=False)``: eval, inspect) never allocates it."""
        if self._buffer is None:
            cfg = self.config
            relabeller = None
            if self.goals is not None:  # HER: the buffer relabels what it samples (ddpgkit.data.her)
                relabeller = Relabeller(cfg.her, cfg.her_k, GoalColumns(self.goals.achieved, self.goals.desired),
                                        self.goals.compute_reward, self.goals.compute_terminated)
            self._buffer = ReplayBuffer(cfg.buffer_size, self.obs_dim, self.act_dim, self.device,
                                        seed=cfg.seed + BUFFER_SEED_OFFSET, n_step=cfg.n_step, gamma=cfg.gamma,
                                        relabeller=relabeller)
        return self._buffer

    def close(self) -> None:
        """Close the envs this agent made: the training env made from an id, and the evaluation env and its
        copies (an env object passed in is the caller's to close). Also ``with DDPG(...) as agent:``."""
        self.eval_envs.close()
        if self._own_env:
            self.env.close()

    def __enter__(self) -> DDPG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- acting -------------------------------------------------------------------------------

    def flat_obs(self, obs: Any) -> np.ndarray:
        """An observation as the env gives it -> the flat vector the networks and the buffer take: a Box's as it
        is, a Dict's entries concatenated in :attr:`obs_layout`'s order, (obs_dim,) float32. A dict that does
        not fit the layout (a key missing, an entry of another size) raises EnvError in one line."""
        if self.obs_layout.keys is None:
            return obs
        try:
            return self.obs_layout.flatten(obs)
        except ValueError as e:
            raise EnvError(f"the environment returned an observation that does not fit its observation space: "
                           f"{one_line(e)}") from None

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., obs_dim) as the networks read them: normalized by :attr:`obs_norm`'s statistics, or
        as they are when ``obs_norm`` is off."""
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def normalize_batch(self, batch: Batch) -> Batch:
        """A sampled batch with its observations and next observations normalized (:meth:`normalize`), by the
        statistics as they are now."""
        if self.obs_norm is None:
            return batch
        return batch._replace(obs=self.obs_norm(batch.obs), next_obs=self.obs_norm(batch.next_obs))

    def observe(self, obs: np.ndarray) -> None:
        """A flat observation the env returned during training: added to :attr:`obs_norm`'s statistics (the one
        place they are updated: collected data only)."""
        if self.obs_norm is not None:
            self.obs_norm.update(obs)

    def _policy(self, obs: Any, noise: bool) -> np.ndarray:
        """μ(s) for one observation (obs_dim,) or a batch (N, obs_dim) — of a Dict env, a dict, a dict of batches,
        a list of dicts or the flat vectors; with ``noise`` the exploration action clip(μ(s) + noise)
        (:func:`~ddpgkit.algo.ddpg.exploration_action`)."""
        with torch.inference_mode():
            obs_t = torch.as_tensor(self.obs_layout.flatten_batch(obs), device=self.device)
            single = obs_t.ndim == 1
            # μ(s) = scale · tanh(f(s)) + bias, the actor's MLP through its named modules
            actor = self.actor
            obs_t = self.normalize(obs_t[None] if single else obs_t)
            action = scale_action(actor.net.forward(obs_t), actor.action_scale, actor.action_bias)  # (N, act_dim)
            if action.device.type != "cpu":
                action = action.cpu()
            if noise:
                action = exploration_action(action, self.noise.draw(), self.action_low, self.action_high)
            out = action.numpy()
        if noise:
            out[0] = self.random_instead(out[0])
        return out[0] if single else out

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action μ(s): (obs_dim,) -> (act_dim,), or (N, obs_dim) -> (N, act_dim)."""
        return self._policy(obs, noise=False)

    def explore(self, obs: np.ndarray) -> np.ndarray:
        """The training action clip(μ(s) + noise, low, high) for one observation (obs_dim,), with the agent's
        exploration noise: one draw of one noise process (Ornstein-Uhlenbeck noise is a process in time, of one
        episode), so a batch is refused with a ValueError. A group of seeds explores through its members'."""
        if self.obs_layout.keys is not None:
            obs = self.obs_layout.flatten_batch(obs)
        if np.ndim(obs) != 1:
            raise ValueError(f"explore takes one observation (obs_dim,), got shape {np.shape(obs)}: the exploration "
                             "noise is one process; use act for a batch, or a DDPGGroup for several agents")
        return self._policy(obs, noise=True)

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Stable-Baselines3's ``predict``: ``(action, None)`` for one observation or a batch.

        ``state`` and ``episode_start`` exist for recurrent policies and are ignored (DDPG has no
        state), as in SB3. The action is μ(s) either way: as in SB3's DDPG, ``deterministic`` does not
        add exploration noise (use :meth:`explore` for that).
        """
        return self.act(observation), None

    def random_action(self) -> np.ndarray:
        """A uniform random action in [low, high] from the agent's own generator (warm-up)."""
        u = torch.rand(self.act_dim, generator=self.explore_generator)
        return (self.action_low + u * (self.action_high - self.action_low)).numpy()

    def random_instead(self, action: np.ndarray) -> np.ndarray:
        """An exploration action (act_dim,), replaced with probability ``random_action_prob`` by a uniformly random
        one (:meth:`random_action`; the HER paper's DDPG explores so 30% of the time). With 0 (DDPG) nothing is
        drawn."""
        p = self.config.random_action_prob
        if p == 0.0 or float(torch.rand((), generator=self.explore_generator)) >= p:
            return action
        return self.random_action()

    # ---- learning -----------------------------------------------------------------------------

    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG gradient step on ``batch`` (:meth:`Learner.update <ddpgkit.algo.learner.Learner.update>`):
        returns detached (critic loss, actor loss, mean Q(s, a)). A network changed since the agent was made (a
        layer replaced or hooked) is refused with the written-out update (:meth:`Learner.check_networks
        <ddpgkit.algo.learner.Learner.check_networks>`)."""
        self.learner.check_networks()
        return self.learner.update(batch)

    @property
    def num_timesteps(self) -> int:
        """Environment steps trained so far (all ``learn`` calls together); of an agent loaded without its
        training state, the checkpoint's step until it trains (as Stable-Baselines3's)."""
        return self.trainer.step if self.trainer is not None else self._saved_step

    def learn(self, total_timesteps: int | None = None, callback: Callback | list[Callback] | None = None) -> DDPG:
        """Train for ``total_timesteps`` more environment steps, as Stable-Baselines3's ``learn`` does;
        with None, until ``config.total_steps`` steps in all (the run's budget).

        Calling again continues where the last call stopped (the buffer, optimisers and counters are
        kept). ``callback`` receives every step, episode, evaluation and metrics row (see
        :class:`ddpgkit.training.loop.Callback`).
        """
        # a model-only load's first learn starts a training run of its own from step 0 (SB3's reset_num_timesteps)
        until = learn_target(self.trainer.step if self.trainer is not None else 0, self.config, total_timesteps)
        return self.learn_until(until, callback)

    def learn_until(self, total_steps: int, callback: Callback | list[Callback] | None = None) -> DDPG:
        """Train until ``total_steps`` environment steps in all (nothing if that many are done): the training
        loop (:func:`~ddpgkit.training.loop.train_loop`) with this one agent."""
        self.learner.check_networks()
        if self.trainer is None:
            self.trainer = Trainer(self)
        trainer, learner, buffer, batch_size = self.trainer, self.learner, self.buffer, self.config.batch_size
        acc = trainer.acc

        def update() -> None:
            torch._foreach_add_(acc, learner.update(self.normalize_batch(buffer.sample(batch_size))))

        train_loop([trainer], total_steps, [callback], lambda observations: [self.explore(observations[0])], update)
        return self

    # ---- evaluation ---------------------------------------------------------------------------

    @property
    def eval_env(self) -> gym.Env:
        """The env evaluations run on (``eval_env`` if given, else a new instance of the training env)."""
        return self.eval_envs.env

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> np.ndarray:
        """Returns (episodes,) of deterministic episodes (μ(s), no noise) on the eval env.

        Episode i starts from ``reset(seed=seed + i)``, with ``seed = config.seed + EVAL_SEED_OFFSET``
        by default, so every evaluation of a run sees the same start states.
        """
        return np.array([e.total_reward for e in self.run_evaluation(episodes, seed)], dtype=np.float64)

    def run_evaluation(self, episodes: int | None = None, seed: int | None = None) -> list[Episode]:
        """The episodes of :meth:`evaluate` themselves (states, actions, rewards), run side by side on
        copies of the eval env (:class:`~ddpgkit.envs.evaluation.EvalEnvs`: μ of all running episodes in one
        forward pass per step); one after another on the eval env when it cannot be copied."""
        n = episodes if episodes is not None else self.config.eval_episodes
        base = seed if seed is not None else self.config.seed + EVAL_SEED_OFFSET
        if not self._eval_layout_checked:  # the episodes flatten the eval env's dicts in its own order
            layout = ObservationLayout.of(self.eval_env.observation_space, "the evaluation env")
            if layout != self.obs_layout:
                raise EnvError(f"the evaluation env's observations are {layout.describe()}, the training env's "
                               f"{self.obs_layout.describe()}: evaluate on an env of the same observation space")
            self._eval_layout_checked = True
        return self.eval_envs.run(self.act, [base + i for i in range(n)])

    def critic_against_returns(self, episodes: list[Episode]) -> tuple[float, float]:
        """The critic against what happened (the TD3 paper's Figure 1, for this run): the mean over every
        state s_t of the episodes of Q(s_t, μ(s_t)) and of the discounted return G_t obtained from it
        (γ = ``config.gamma``). Where an episode was cut by its time limit, G_t is completed by the
        critic's own Q(s_T, μ(s_T)) discounted by γ^(T−t) (the remainder the cut hid: the only estimate
        there is; with γ = 0.98 and 200 steps it weighs < 2% at s_0); after a termination, by nothing.
        Returns (mean Q, mean G); their difference is the critic's over- (> 0) or underestimation."""
        qs, gs = [], []
        for e in episodes:
            with torch.inference_mode():
                obs = torch.as_tensor(e.observations, dtype=torch.float32, device=self.device)  # (T + 1, obs_dim)
                obs = self.normalize(obs)
                q = self.critic(obs, self.actor(obs))[:, 0].cpu().numpy().astype(np.float64)  # (T + 1,)
            tail = q[-1] if e.truncated and not e.terminated else 0.0
            qs.append(q[:-1])
            gs.append(discounted_returns(e.rewards, self.config.gamma, tail))
        return float(np.concatenate(qs).mean()), float(np.concatenate(gs).mean())

    # ---- persistence --------------------------------------------------------------------------

    def export(self, path: str | Path, format: str = "onnx", checkpoint: str | Path | None = None) -> tuple[Path, Path]:
        """Write the policy as one graph from the env's observation to its action — normalization and the rescale
        to the action bounds inside, any batch size, fp32 — as ``format`` ("onnx" or "torchscript") to ``path``,
        and its JSON contract beside it (``path`` with ``.json``; :mod:`ddpgkit.agents.export`). ``checkpoint``: the
        checkpoint directory the agent was loaded from, recorded with its manifest's SHA-256. Returns both paths."""
        return export_policy(self, path, format, Path(checkpoint) if checkpoint is not None else None)

    def model_tensors(self) -> dict[str, torch.Tensor]:
        """The networks' tensors by name (``actor.net.linear0.weight``, ...), as saved: the four of DDPG, and
        with ``n_critics = 2`` ``critic2.*`` and ``critic2_target.*``, with ``obs_norm`` the statistics
        ``obs_norm.count``, ``obs_norm.mean``, ``obs_norm.m2``."""
        out = {}
        for prefix, module in (("actor", self.actor), ("critic", self.critic),
                               ("actor_target", self.actor_target), ("critic_target", self.critic_target),
                               ("critic2", self.critic2), ("critic2_target", self.critic2_target),
                               ("obs_norm", self.obs_norm)):
            if module is not None:
                out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        return out

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint records beside the tensors (JSON)."""
        return {
            "algorithm": "DDPG", "env_id": self.env_id, "config": self.config.to_dict(),
            "obs_dim": self.obs_dim, "act_dim": self.act_dim, "observation": self.obs_layout.to_json(),
            "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist(),
            "num_updates": self.learner.num_updates, "step": self.num_timesteps,
        }

    def save(self, path: str | Path, training_state: bool = False, share_buffer: bool = False) -> Path:
        """Write the four networks (safetensors) and the config and metadata (JSON) to ``path``.

        With ``training_state=True`` the checkpoint also holds everything needed to continue
        training exactly: optimiser states, the replay buffer, the noise and every random state, and
        the training loop's counters and metrics (see :mod:`ddpgkit.training.state`). The replay
        buffer (and the metrics history) is written in chunks of about 4 MB: inside the checkpoint directory, or
        with ``share_buffer=True`` (what a run directory's checkpoints do) as immutable files in
        ``<path>/../.chunks/`` shared by the checkpoints saved beside it, where only the chunks whose contents
        changed since this agent last saved them there are written — with ``keep_checkpoints`` >= 2 in two
        alternating generations of files, so that no file is in every kept checkpoint
        (:class:`~ddpgkit.storage.checkpoint.ChunkFiles`).
        """
        tensors = {"model": self.model_tensors()}
        meta = self.metadata()
        shared: dict[str, dict[str, Any]] = {}
        if training_state:
            tensors["training"], meta["training"] = collect_training_state(self)
            generations = 2 if self.config.keep_checkpoints >= 2 else 1  # kept checkpoints share no file (ChunkFiles)
            for k in self.buffer.edited:  # rows changed in place (ReplayBuffer.cut_episode): written again
                self.buffer_chunks.forget(k)
            self.buffer.edited.clear()
            inside, shared, names = self.buffer_chunks.save(path, self.buffer.chunks(), self.buffer.chunk, share_buffer,
                                                            generations)
            tensors.update(inside)
            meta["training"]["buffer"]["chunk_files"] = names
            history = self.trainer.history if self.trainer is not None else []
            inside, more, names = self.history_chunks.save(path, history_chunks(history),
                                                           lambda k: history_chunk(history, k), share_buffer,
                                                           generations)
            tensors.update(inside)
            shared.update(more)
            meta["training"]["history"]["chunk_files"] = names
        return save_checkpoint(path, tensors, meta, shared)

    @classmethod
    def load(cls, path: str | Path, env: str | gym.Env | None = None, device: str | None = None,
             training_state: bool = True) -> DDPG:
        """Rebuild an agent from :meth:`save`'s directory. ``env`` defaults to the saved env id.

        The checkpoint is verified (checksums) and checked against the env's observation and action
        dimensions and bounds before any weight is copied. If it holds a training state (and
        ``training_state`` is True), that is restored too, and ``learn`` continues exactly where the
        saved run stopped. ``device`` replaces the saved config's device.
        """
        files = CheckpointFiles(path)
        with_state = training_state and "training.safetensors" in files.manifest["files"]
        tensors, meta = load_checkpoint(files, only=("model", "training") if with_state else ("model",))
        meta, tensors = upgrade(files.manifest["version"], meta, tensors)  # an older format read as this one
        check_meta(meta, str(path))
        if not with_state:
            meta.pop("training", None)

        def read(name: str) -> dict[str, torch.Tensor]:  # a chunk file: made by the upgrade, or on disk
            return tensors.get(name.removesuffix(".safetensors")) or files.read(name)

        try:
            config = DDPGConfig.from_dict(meta["config"], f"{path}: config")
            if device is not None:
                config = config.replace(device=device)
            env_arg = env if env is not None else meta["env_id"]
            if env_arg is None:
                raise CheckpointError(f"{path}: made with an unregistered env; pass env= to load it")
            _check_layer_sizes(config, tensors["model"], str(path))  # before building networks of those sizes
            agent = cls(env_arg, config)
            try:
                agent._check_compatible(meta, str(path))
                agent._load_model(tensors["model"], str(path))
                num_updates = meta["num_updates"]
                if type(num_updates) is not int or num_updates < 0:
                    raise CheckpointError(f"{path}: num_updates must be an integer >= 0, got {num_updates!r}")
                agent.learner.num_updates = num_updates
                step = meta["step"]
                if type(step) is not int or step < 0:
                    raise CheckpointError(f"{path}: step must be an integer >= 0, got {step!r}")
                agent._saved_step = step
                if with_state:
                    restore_training_state(agent, tensors["training"], meta["training"], str(path), read)
                    agent.buffer_chunks.remember(agent.buffer.chunks(), meta["training"]["buffer"]["chunk_files"],
                                                 files.manifest["shared"])
                    history = agent.trainer.history if agent.trainer is not None else []
                    agent.history_chunks.remember(history_chunks(history), meta["training"]["history"]["chunk_files"],
                                                  files.manifest["shared"])
                    if meta["step"] != agent.num_timesteps or type(meta["step"]) is not int:
                        raise CheckpointError(f"{path}: the checkpoint says step {meta['step']!r}, its training state "
                                              f"{agent.num_timesteps}")
            except BaseException:
                agent.close()  # the env made for it
                raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            if isinstance(e, DDPGKitError):
                raise
            raise CheckpointError(f"{path}: checkpoint metadata is incomplete or invalid "
                                  f"({type(e).__name__}: {one_line(e)})") from None
        except (RuntimeError, MemoryError) as e:  # e.g. a replay buffer too large for this machine
            raise CheckpointError(f"{path}: cannot build the saved agent here ({type(e).__name__}: "
                                  f"{one_line(e)[:200]})") from None
        return agent

    def _check_compatible(self, meta: dict[str, Any], where: str) -> None:
        dims = (meta.get("obs_dim"), meta.get("act_dim"))
        if not all(type(d) is int for d in dims) or dims != (self.obs_dim, self.act_dim):
            raise CheckpointError(
                f"{where}: made for observation/action dimensions {dims[0]}/{dims[1]}, "
                f"but the env has {self.obs_dim}/{self.act_dim}")
        saved = ObservationLayout.from_json(meta.get("observation"))
        if saved is None:
            raise CheckpointError(f"{where}: meta.observation must be obs_dim or [[key, size], ...], got "
                                  f"{meta.get('observation')!r}")
        if saved != self.obs_layout:
            raise CheckpointError(f"{where}: made for observations {saved.describe()}, but the env gives "
                                  f"{self.obs_layout.describe()}")
        low, high = meta.get("action_low"), meta.get("action_high")
        numbers = all(isinstance(b, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
                      for b in (low, high))
        if not numbers or low != self.action_low.tolist() or high != self.action_high.tolist():
            raise CheckpointError(f"{where}: made for action bounds {low}..{high}, but the env has "
                                  f"{self.action_low.tolist()}..{self.action_high.tolist()}")

    def _load_model(self, tensors: dict[str, torch.Tensor], where: str) -> None:
        expected = self.model_tensors()
        if set(tensors) != set(expected):
            missing, extra = set(expected) - set(tensors), set(tensors) - set(expected)
            raise CheckpointError(f"{where}: model tensors do not match this config "
                                  f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})")
        for name, t in tensors.items():
            if t.shape != expected[name].shape or t.dtype != expected[name].dtype:
                raise CheckpointError(f"{where}: tensor {name} has shape {tuple(t.shape)} {t.dtype}, "
                                      f"expected {tuple(expected[name].shape)} {expected[name].dtype}")
            if not torch.isfinite(t).all():
                raise CheckpointError(f"{where}: tensor {name} contains NaN or inf")
        with torch.no_grad():
            for name, t in tensors.items():
                expected[name].copy_(t)



def _check_layer_sizes(config: DDPGConfig, model: dict[str, torch.Tensor], where: str) -> None:
    """The saved networks have the config's hidden layer sizes (checked on the tensors alone)."""
    k = config.critic_action_layer
    layers = [(f"actor.net.linear{i}", size) for i, size in enumerate(config.hidden)]
    for critic in ("critic", "critic2")[:config.n_critics]:
        layers += [(f"{critic}.obs_net.linear{i}", size) for i, size in enumerate(config.hidden[:k])]
        layers += [(f"{critic}.net.linear{i}", size) for i, size in enumerate(config.hidden[k:])]
    for name, size in layers:
        w = model.get(f"{name}.weight")
        if w is None or w.ndim != 2 or w.shape[0] != size:
            got = None if w is None else tuple(w.shape)
            raise CheckpointError(f"{where}: config says {name} has {size} units, but its weight is {got}")
