"""DDPG (Lillicrap et al. 2015, "Continuous control with deep reinforcement learning").

The update is three functions that read like the paper:

* :func:`critic_loss` — L(φ) = mean_B (Q_φ(s, a) − y)²  with  y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))
* :func:`actor_loss`  — J(θ) = −mean_B Q_φ(s, μ_θ(s))  (the deterministic policy gradient)
* :func:`soft_update` — θ' ← τ θ + (1 − τ) θ'

and :class:`DDPG` owns the networks, optimisers, replay buffer and noise, with the API users know
from Stable-Baselines3: ``DDPG(env, config, seed=0).learn(steps)``, ``predict``, ``save``, ``load``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .buffer import Batch, ReplayBuffer
from .checkpoint import load_checkpoint, read_manifest, save_checkpoint
from .config import DDPGConfig
from .envs import env_id as get_env_id
from .envs import make_env
from .errors import CheckpointError, ConfigError, DDPGKitError
from .nn import MLP, Actor, Critic
from .noise import make_noise

if TYPE_CHECKING:
    from .train import Callback, Trainer

# Sub-seeds derived from the one run seed, so that every generator is independent and fixed.
BUFFER_SEED_OFFSET = 1
NOISE_SEED_OFFSET = 2
EXPLORE_SEED_OFFSET = 3
EVAL_SEED_OFFSET = 10_000  # evaluation episode i is reset with seed + EVAL_SEED_OFFSET + i


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """The TD target  y = r + γ (1 − terminated) Q'(s', μ'(s')).

    Only a true termination stops the bootstrap; a transition cut by a time limit (``truncated``)
    still bootstraps from Q'(s', μ'(s')). All arguments and the result are (B, 1).
    """
    return reward + gamma * (1.0 - terminated) * next_q


def critic_loss(critic: Critic, critic_target: Critic, actor_target: Actor, batch: Batch,
                gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,  y_i = r_i + γ (1 − d_i) Q_φ'(s'_i, μ_θ'(s'_i)).

    The target y is computed without gradient (from the target networks). Returns the loss and
    the detached Q(s, a) of shape (B, 1) for logging.
    """
    with torch.no_grad():
        next_q = critic_target(batch.next_obs, actor_target(batch.next_obs))  # (B, 1)
        y = td_target(batch.reward, batch.terminated, next_q, gamma)  # (B, 1)
    q = critic(batch.obs, batch.action)  # (B, 1)
    return F.mse_loss(q, y), q.detach()


def actor_loss(actor: Actor, critic: Critic, obs: torch.Tensor) -> torch.Tensor:
    """J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)); its gradient is the deterministic policy gradient
    ∇_θ J = −1/B Σ_i ∇_a Q_φ(s_i, a)|_{a=μ_θ(s_i)} ∇_θ μ_θ(s_i)."""
    return -critic(obs, actor(obs)).mean()


@torch.no_grad()
def soft_update(target: torch.nn.Module | list[torch.Tensor], online: torch.nn.Module | list[torch.Tensor],
                tau: float) -> None:
    """Polyak averaging θ' ← τ θ + (1 − τ) θ' over all parameters (τ weights the online network).

    ``target`` and ``online`` are modules or matching lists of parameters (the agent passes the
    actor's and critic's together). One fused ``lerp`` over the lists: θ' + τ (θ − θ') = τ θ + (1 − τ) θ'.
    """
    if isinstance(target, torch.nn.Module):
        target = list(target.parameters())
    if isinstance(online, torch.nn.Module):
        online = list(online.parameters())
    torch._foreach_lerp_(target, online, tau)


def make_adam(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has it for the parameters' device (one call per
    step instead of a dozen list operations), else the foreach implementation. Same update rule."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - older torch or unsupported device
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` for a one-group fused Adam, minus torch.optim's per-call bookkeeping.

    It calls the kernel ``Adam.step`` would call (``torch._fused_adam_``) on the optimiser's own state
    tensors, so parameters and state come out bit-identical to ``optimizer.step()`` (tested) — in
    about a third of the time, which matters for small networks (two optimiser steps per update).
    Anything else (the first step, which creates the state; several groups; non-fused; AMSGrad;
    a parameter without a gradient) goes through ``optimizer.step()``.
    """
    groups = optimizer.param_groups
    group = groups[0]
    params = group["params"]
    state = optimizer.state
    if (len(groups) != 1 or not group.get("fused") or group["amsgrad"] or group["maximize"]
            or group["differentiable"] or group["capturable"] or group["decoupled_weight_decay"]
            or isinstance(group["lr"], torch.Tensor) or not state.get(params[0])):
        optimizer.step()
        return
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        optimizer.step()
        return
    states = [state[p] for p in params]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                       steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                       weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                       grad_scale=None, found_inf=None)


def critic_gradients(critic: MLP, critic_target: MLP, actor_target: MLP, batch: Batch, gamma: float,
                     action_scale: torch.Tensor, action_bias: torch.Tensor, dtype: torch.dtype | None = None
                     ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """∇_φ L of :func:`critic_loss` with the backward pass written out (:meth:`MLP.backward`):

        y = r + γ (1 − d) Q_φ'(s', μ_θ'(s')),   L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,   ∂L/∂Q = 2 (Q − y) / B

    Takes the MLPs inside the Critic/Actor modules and μ's action scale and bias (act_dim,); ``dtype``
    (bf16) runs the hidden-to-hidden layers in that precision. Returns ([(∂L/∂W_i, ∂L/∂b_i)], L,
    mean Q(s, a)); modifies nothing.
    """
    next_tanh, _ = actor_target.forward_with_cache(batch.next_obs, actor_target.layer_weights(dtype))  # (B, act_dim)
    next_action = next_tanh * action_scale + action_bias  # (B, act_dim) μ'(s')
    next_q, _ = critic_target.forward_with_cache(torch.cat([batch.next_obs, next_action], dim=-1),
                                                 critic_target.layer_weights(dtype))  # (B, 1)
    y = td_target(batch.reward, batch.terminated, next_q, gamma)  # (B, 1)
    weights = critic.layer_weights(dtype)
    q, cache = critic.forward_with_cache(torch.cat([batch.obs, batch.action], dim=-1), weights)  # (B, 1)
    loss = F.mse_loss(q, y)
    grads, _ = critic.backward(cache, (q - y) * (2.0 / q.numel()), weights=weights)
    return grads, loss, q.mean()


def actor_gradients(actor: MLP, critic: MLP, obs: torch.Tensor, action_scale: torch.Tensor, action_bias: torch.Tensor,
                    dtype: torch.dtype | None = None) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """∇_θ J of :func:`actor_loss` with the backward pass written out:

        J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)),   ∂J/∂Q = −1/B,
        back through the critic to ∂J/∂a only (its weights get no gradient), ∂J/∂(tanh output) = ∂J/∂a · scale,
        then through μ's MLP.

    Returns ([(∂J/∂W_i, ∂J/∂b_i)] of the actor's MLP, J); modifies nothing.
    """
    actor_weights, critic_weights = actor.layer_weights(dtype), critic.layer_weights(dtype)
    tanh_out, actor_cache = actor.forward_with_cache(obs, actor_weights)  # (B, act_dim)
    action = tanh_out * action_scale + action_bias  # (B, act_dim) μ(s)
    q_pi, critic_cache = critic.forward_with_cache(torch.cat([obs, action], dim=-1), critic_weights)  # (B, 1)
    loss = -q_pi.mean()
    _, grad_in = critic.backward(critic_cache, torch.full_like(q_pi, -1.0 / q_pi.numel()), weights=critic_weights,
                                 input_grad=True, weight_grads=False)  # (B, obs_dim + act_dim)
    grads, _ = actor.backward(actor_cache, grad_in[:, obs.shape[1]:] * action_scale, weights=actor_weights)
    return grads, loss


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here")
    return torch.device(name)


class DDPG:
    """The DDPG agent.

    Args:
        env: a Gymnasium id such as ``"Pendulum-v1"`` or a ``gymnasium.Env`` with a bounded Box
            action space.
        config: hyperparameters; the defaults of :class:`DDPGConfig` when None.
        seed: overrides ``config.seed`` when given. The seed fixes torch's and numpy's global
            generators (for the initial weights), the env, its action space, and the buffer's,
            noise's and warm-up's own generators.
        eval_env: the env used for evaluation; a fresh instance of ``env`` when None.
    """

    def __init__(self, env: str | gym.Env, config: DDPGConfig | None = None, seed: int | None = None,
                 eval_env: str | gym.Env | None = None) -> None:
        config = config or DDPGConfig()
        if seed is not None:
            config = config.replace(seed=seed)
        self.config = config
        self.device = resolve_device(config.device)
        self.env = make_env(env)
        self.env_id = get_env_id(self.env)
        self._eval_env_arg = eval_env
        self._eval_env: gym.Env | None = None
        act_space = self.env.action_space
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.act_dim = int(act_space.shape[0])
        self.action_low = torch.as_tensor(act_space.low, dtype=torch.float32)  # (act_dim,)
        self.action_high = torch.as_tensor(act_space.high, dtype=torch.float32)  # (act_dim,)

        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        init = config.final_layer_init or None
        self.actor = Actor(self.obs_dim, self.action_low, self.action_high, config.hidden, config.activation,
                           init).to(self.device)
        self.critic = Critic(self.obs_dim, self.act_dim, config.hidden, config.activation, init).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # parameter lists, gathered once: walking the module tree on every update costs real time
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._online_params = self._critic_params + self._actor_params
        # the MLPs and action scale/bias for the hand-written update, looked up once (the modules
        # stay on their device; loading copies into them in place)
        self._nets = (self.critic.net, self.actor.net, self.critic_target.net, self.actor_target.net)
        self._action_scale_bias = (self.actor.action_scale, self.actor.action_bias)
        self._target_params = list(self.critic_target.parameters()) + list(self.actor_target.parameters())
        self.actor_optimizer = make_adam(self._actor_params, config.actor_lr)
        self.critic_optimizer = make_adam(self._critic_params, config.critic_lr, config.critic_weight_decay)
        self.buffer = ReplayBuffer(config.buffer_size, self.obs_dim, self.act_dim, self.device,
                                   seed=config.seed + BUFFER_SEED_OFFSET)
        self.noise = make_noise(config.noise, config.noise_scale * self.actor.action_scale.cpu(),
                                theta=config.ou_theta, dt=config.ou_dt, seed=config.seed + NOISE_SEED_OFFSET)
        self.explore_generator = torch.Generator().manual_seed(config.seed + EXPLORE_SEED_OFFSET)
        self.num_updates = 0
        self.trainer: Trainer | None = None
        bf16 = config.precision == "bf16"
        self._autocast = lambda: torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        self._handwritten = config.backward == "handwritten"
        self._compute_dtype = torch.bfloat16 if bf16 else None  # the handwritten update's matmul dtype
        self._critic_gradients, self._actor_gradients = critic_gradients, actor_gradients
        # On CUDA, compile's "reduce-overhead" mode also replays each compiled function as a CUDA graph:
        # one launch instead of dozens of small kernels, which is what a small network's update costs there.
        self._cuda_graphs = config.compile and self.device.type == "cuda"
        if config.compile:
            mode = "reduce-overhead" if self._cuda_graphs else None
            self._critic_gradients = torch.compile(critic_gradients, mode=mode)
            self._actor_gradients = torch.compile(actor_gradients, mode=mode)

    # ---- acting -------------------------------------------------------------------------------

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one observation (obs_dim,) or a batch (N, obs_dim): μ(s), plus
        exploration noise when ``deterministic`` is False, clipped to the action bounds."""
        with torch.inference_mode():
            obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
            single = obs_t.ndim == 1
            scale, bias = self._action_scale_bias
            # μ(s) = scale · tanh(MLP(s)) + bias: Actor.forward without the module-call overhead
            action = self._nets[1].forward(obs_t[None] if single else obs_t) * scale + bias  # (N, act_dim)
            if action.device.type != "cpu":
                action = action.cpu()
            if not deterministic:
                action = torch.clamp(action + self.noise.sample(), self.action_low, self.action_high)
            out = action.numpy()
        return out[0] if single else out

    def random_action(self) -> np.ndarray:
        """A uniform random action in [low, high] from the agent's own generator (warm-up)."""
        u = torch.rand(self.act_dim, generator=self.explore_generator)
        return (self.action_low + u * (self.action_high - self.action_low)).numpy()

    # ---- learning -----------------------------------------------------------------------------

    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG gradient step on a batch: critic, then actor (critic frozen), then targets.

        Returns detached (critic loss, actor loss, mean Q(s, a)) as 0-d tensors. With
        ``config.backward == "handwritten"`` (the default) the gradients come from
        :meth:`_update_handwritten`, which in fp32 computes the same numbers as autograd does here.
        With ``backward == "autograd"`` and bf16, the forward passes run under bfloat16 autocast.
        """
        if self._handwritten:
            return self._update_handwritten(batch)
        cfg = self.config
        # critic: minimise (Q(s, a) − y)²
        with self._autocast():
            loss_q, q = critic_loss(self.critic, self.critic_target, self.actor_target, batch, cfg.gamma)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss_q.backward()
        adam_step(self.critic_optimizer)
        # actor: minimise −Q(s, μ(s)); the critic's weights need no gradient here, only ∂Q/∂a does
        for p in self._critic_params:
            p.requires_grad_(False)
        with self._autocast():
            loss_pi = actor_loss(self.actor, self.critic, batch.obs)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss_pi.backward()
        adam_step(self.actor_optimizer)
        for p in self._critic_params:
            p.requires_grad_(True)
        # targets: θ' ← τ θ + (1 − τ) θ', critic and actor in one call
        soft_update(self._target_params, self._online_params, cfg.tau)
        self.num_updates += 1
        return loss_q.detach(), loss_pi.detach(), q.mean()

    @torch.no_grad()
    def _update_handwritten(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`update` with the gradients from :func:`critic_gradients` and :func:`actor_gradients`
        (the backward passes written out) instead of autograd: in fp32 the same kernels and identical
        gradients (a test checks them bit for bit), without building and walking an autograd graph
        twice per update. With ``config.compile`` those two functions run compiled (on CUDA, replayed
        as CUDA graphs)."""
        critic, actor, critic_target, actor_target = self._nets
        scale, bias = self._action_scale_bias
        dt = self._compute_dtype
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last update's graph outputs may be reused now
        # critic step
        grads, loss_q, q_mean = self._critic_gradients(critic, critic_target, actor_target, batch, self.config.gamma,
                                                       scale, bias, dt)
        critic.set_grads(grads)
        adam_step(self.critic_optimizer)
        # actor step (through the critic as the critic step left it)
        grads, loss_pi = self._actor_gradients(actor, critic, batch.obs, scale, bias, dt)
        actor.set_grads(grads)
        adam_step(self.actor_optimizer)
        # targets
        soft_update(self._target_params, self._online_params, self.config.tau)
        self.num_updates += 1
        if self._cuda_graphs:  # a CUDA graph overwrites its outputs at its next replay; the caller keeps these
            return loss_q.clone(), loss_pi.clone(), q_mean.clone()
        return loss_q, loss_pi, q_mean

    def learn(self, total_steps: int | None = None, callback: Callback | list[Callback] | None = None) -> DDPG:
        """Train until ``total_steps`` environment steps in all (``config.total_steps`` when None).

        Calling again continues where the last call stopped. ``callback`` receives every step,
        episode, evaluation and metrics row (see :class:`ddpgkit.train.Callback`).
        """
        from .train import Trainer

        if self.trainer is None:
            self.trainer = Trainer(self)
        self.trainer.run(total_steps if total_steps is not None else self.config.total_steps, callback)
        return self

    @property
    def eval_env(self) -> gym.Env:
        """The evaluation env: ``eval_env`` if given, else a new instance of the training env."""
        if self._eval_env is None:
            if self._eval_env_arg is not None:
                self._eval_env = make_env(self._eval_env_arg)
            elif self.env.spec is not None:
                self._eval_env = make_env(gym.make(self.env.spec))
            else:
                self._eval_env = copy.deepcopy(self.env)
        return self._eval_env

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> np.ndarray:
        """Returns of ``episodes`` deterministic episodes (μ(s), no noise) on the eval env.

        Episode i starts from ``reset(seed=seed + i)``, with ``seed = config.seed + EVAL_SEED_OFFSET``
        by default, so every evaluation of a run sees the same start states.
        """
        from .train import evaluate

        n = episodes if episodes is not None else self.config.eval_episodes
        base = seed if seed is not None else self.config.seed + EVAL_SEED_OFFSET
        return evaluate(self, self.eval_env, n, base)

    # ---- persistence --------------------------------------------------------------------------

    def model_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("actor", self.actor), ("critic", self.critic),
                               ("actor_target", self.actor_target), ("critic_target", self.critic_target)):
            out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        return out

    def metadata(self) -> dict[str, Any]:
        return {
            "algorithm": "DDPG", "env_id": self.env_id, "config": self.config.to_dict(),
            "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist(),
            "num_updates": self.num_updates,
            "step": self.trainer.step if self.trainer is not None else 0,
        }

    def save(self, path: str | Path, training_state: bool = False) -> Path:
        """Write the four networks (safetensors) and the config and metadata (JSON) to ``path``.

        With ``training_state=True`` the checkpoint also holds everything needed to continue
        training exactly: optimiser states, the replay buffer, the noise and every random state, and
        the training loop's counters and metrics (see :mod:`ddpgkit.state`).
        """
        tensors = {"model": self.model_tensors()}
        meta = self.metadata()
        if training_state:
            from .state import training_state as collect

            tensors["training"], meta["training"] = collect(self)
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, env: str | gym.Env | None = None, device: str | None = None,
             training_state: bool = True) -> DDPG:
        """Rebuild an agent from :meth:`save`'s directory. ``env`` defaults to the saved env id.

        The checkpoint is verified (checksums) and checked against the env's observation and action
        dimensions and bounds before any weight is copied. If it holds a training state (and
        ``training_state`` is True), that is restored too, and ``learn`` continues exactly where the
        saved run stopped.
        """
        manifest_files = read_manifest(path)["files"]
        with_state = training_state and "training.safetensors" in manifest_files
        tensors, meta = load_checkpoint(path, only=("model", "training") if with_state else ("model",))
        try:
            config = DDPGConfig.from_dict(meta["config"], f"{path}: config")
            if device is not None:
                config = config.replace(device=device)
            env_arg = env if env is not None else meta["env_id"]
            if env_arg is None:
                raise CheckpointError(f"{path}: made with an unregistered env; pass env= to load it")
            agent = cls(env_arg, config)
            agent._check_compatible(meta, str(path))
            agent._load_model(tensors["model"], str(path))
            agent.num_updates = int(meta.get("num_updates", 0))
            if with_state:
                from .state import restore_training_state

                restore_training_state(agent, tensors["training"], meta["training"], str(path))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, DDPGKitError):
                raise
            raise CheckpointError(f"{path}: checkpoint metadata is incomplete or invalid ({type(e).__name__}: {e})"
                                  ) from None
        return agent

    def _check_compatible(self, meta: dict[str, Any], where: str) -> None:
        if (meta.get("obs_dim"), meta.get("act_dim")) != (self.obs_dim, self.act_dim):
            raise CheckpointError(
                f"{where}: made for observation/action dimensions {meta.get('obs_dim')}/{meta.get('act_dim')}, "
                f"but the env has {self.obs_dim}/{self.act_dim}")
        low, high = meta.get("action_low"), meta.get("action_high")
        if low != self.action_low.tolist() or high != self.action_high.tolist():
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
