"""One DDPG update in the paper's order — critic step, actor step, soft update of both targets — on the
four networks and two optimisers of an agent (:class:`ddpgkit.DDPG`) or of N agents stacked into one
(:class:`ddpgkit.agents.group.DDPGGroup`, :mod:`ddpgkit.nn.stacked`): the same code, with (B, ·) tensors for
one agent and (N, B, ·) for N.

:class:`Update` is the part of the agent that owns that step; a subclass sets the four networks and
calls ``Update._bind_networks``.
"""

from __future__ import annotations

import torch

from ..config.ddpg import DDPGConfig
from ..data.buffer import Batch
from ..errors import NonFiniteUpdate
from ..nn.actor_critic import Actor, Critic
from ..nn.backward import Weights, set_grads
from .ddpg import actor_loss, critic_loss, soft_update
from .gradients import actor_gradients, batch_mean, critic_gradients, critic_nets
from .health import new_health, record_actor, record_critic
from .optim import adam_step, make_adam

# The non-finite check of the sentinel: one fused kernel over all gradients where this torch has it (the one
# GradScaler uses; private, so feature-detected here and tested against the public fallback, a reduction of
# every gradient's norm). With a scale of 1 it multiplies each gradient by 1.0: every value stays as it was.
NON_FINITE_KERNEL = getattr(torch, "_amp_foreach_non_finite_check_and_unscale_", None)


def all_finite(loss: torch.Tensor, tensors: list[torch.Tensor], scratch: torch.Tensor | None = None) -> bool:
    """True if ``loss`` and every tensor hold no NaN or inf (one kernel and one scalar read on the fast
    path). ``scratch``: two floats [0, 1] on the tensors' device to reuse (else made here)."""
    checked = [*tensors, loss.reshape(-1)]
    if NON_FINITE_KERNEL is not None and all(t.dtype == loss.dtype for t in checked):
        if scratch is None:
            scratch = torch.tensor([0.0, 1.0], device=loss.device)
        found, one = scratch[:1], scratch[1:]
        NON_FINITE_KERNEL(checked, found, one)  # found = 1.0 if any value is NaN or inf
        ok = found.item() == 0
        found.zero_()
        return ok
    return bool(torch.isfinite(torch.stack([*torch._foreach_norm(tensors), loss.sum()]).sum()))


class Update:
    """DDPG's update of ``actor``, ``critic`` and their targets with Adam.

    ``update(batch)`` returns detached (critic loss, actor loss, mean Q(s, a)): 0-d tensors for one
    agent, (N,) for N stacked agents. Every ``config.health_interval``-th critic step and actor step
    also adds its health signals (:mod:`ddpgkit.algo.health`) to ``health``, the record the training
    loop reads and empties at every metrics row.
    """

    config: DDPGConfig
    device: torch.device
    actor: Actor
    critic: Critic
    actor_target: Actor
    critic_target: Critic
    actor_optimizer: torch.optim.Adam
    critic_optimizer: torch.optim.Adam
    num_updates: int
    health: torch.Tensor  # (9,) or (N, 9): the health signals since the last metrics row (algo.health)

    def _bind_networks(self, loss_shape: tuple[int, ...] = ()) -> None:
        """Once the four networks are set: the parameter lists, the MLPs the written-out update takes, the
        optimisers, the gradient functions (compiled with ``config.compile``). ``loss_shape``: () for one
        agent, (N,) for N stacked ones."""
        config = self.config
        # parameter lists, gathered once: walking the module tree on every update costs real time
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._online_params = self._critic_params + self._actor_params
        self._target_params = list(self.critic_target.parameters()) + list(self.actor_target.parameters())
        # the MLPs and action scale/bias for the hand-written update, looked up once (the modules
        # stay on their device; loading copies into them in place)
        self._nets = (critic_nets(self.critic), self.actor.net, critic_nets(self.critic_target), self.actor_target.net)
        self._action_scale_bias = (self.actor.action_scale, self.actor.action_bias)
        self.actor_optimizer = make_adam(self._actor_params, config.actor_lr)
        self.critic_optimizer = make_adam(self._critic_params, config.critic_lr, config.critic_weight_decay)
        self._last_actor_loss = torch.zeros(loss_shape, device=self.device)  # reported on updates without an actor step
        self._finite_scratch = torch.tensor([0.0, 1.0], device=self.device)  # the sentinel's (all_finite)
        self.health = new_health(loss_shape, self.device)
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

    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG gradient step on a batch: critic, then actor (critic frozen), then targets.

        With ``config.policy_frequency = N > 1`` the actor and the targets are updated on every N-th
        call only (the critic on every call); the other calls report the last actor loss.
        Returns detached (critic loss, actor loss, mean Q(s, a)). With ``config.backward ==
        "handwritten"`` (the default) the gradients come from :mod:`ddpgkit.algo.gradients`, which in
        fp32 computes the same numbers as autograd does here. With ``backward == "autograd"`` and
        bf16, the forward passes run under bfloat16 autocast.
        """
        if self._handwritten:
            return self._update_handwritten(batch)
        cfg = self.config
        # critic: minimise (Q(s, a) − y)²
        with self._autocast():
            loss_q, q, y = critic_loss(self.critic, self.critic_target, self.actor_target, batch, cfg.gamma)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss_q.backward()
        grads = _grads_of(self._critic_params)
        self._check_finite("critic", loss_q.detach(), grads, batch)
        if self._measure_critic():
            record_critic(self.health, grads, q.float(), (q - y).float())
        adam_step(self.critic_optimizer)
        if self.num_updates % cfg.policy_frequency:  # critic only this time
            self.num_updates += 1
            return loss_q.detach(), self._last_actor_loss, q.mean()
        # actor: minimise −Q(s, μ(s)); the critic's weights need no gradient here, only ∂Q/∂a does
        for p in self._critic_params:
            p.requires_grad_(False)
        with self._autocast():
            loss_pi = actor_loss(self.actor, self.critic, batch.obs)
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss_pi.backward()
        grads = _grads_of(self._actor_params)
        self._check_finite("actor", loss_pi.detach(), grads, batch)
        if self._measure_actor():
            with torch.no_grad():
                record_actor(self.health, grads, self.actor.net(batch.obs))
        adam_step(self.actor_optimizer)
        for p in self._critic_params:
            p.requires_grad_(True)
        # targets: θ' ← τ θ + (1 − τ) θ', critic and actor in one call
        soft_update(self._target_params, self._online_params, cfg.tau)
        self.num_updates += 1
        self._last_actor_loss = loss_pi.detach()
        return loss_q.detach(), self._last_actor_loss, q.mean()

    def _measure_critic(self) -> bool:
        """Whether this update's critic step adds to :attr:`health` (every ``health_interval``-th)."""
        every = self.config.health_interval
        return every > 0 and self.num_updates % every == 0

    def _measure_actor(self) -> bool:
        """Whether this update's actor step adds to :attr:`health` (every ``health_interval``-th actor step)."""
        every = self.config.health_interval
        return every > 0 and (self.num_updates // self.config.policy_frequency) % every == 0

    def _members(self) -> list[str] | None:
        """Names of the stacked agents (for a group: "seed k"), None for one agent."""
        return None

    def _check_finite(self, what: str, loss: torch.Tensor, grads: Weights, batch: Batch) -> None:
        """The sentinel: raise :class:`NonFiniteUpdate` if ``loss`` or any gradient holds NaN or inf,
        before anything is applied (:func:`all_finite`; the culprit is looked up only then)."""
        flat = [t for pair in grads for t in pair]
        if all_finite(loss, flat, self._finite_scratch):
            return
        names = self._members()
        bad_loss = ~torch.isfinite(loss.reshape(-1))  # (N,) or (1,)
        signal = f"{what} loss" if bool(bad_loss.any()) else f"{what} gradient"
        member = None
        if names is not None:
            per_member = bad_loss.clone()
            for g in flat:
                per_member |= ~torch.isfinite(g.reshape(len(names), -1)).all(dim=1)
            member = int(per_member.nonzero()[0, 0])
            signal = f"{signal} of {names[member]}"
        raise NonFiniteUpdate(signal, batch, member=member)

    @torch.no_grad()
    def _update_handwritten(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`update` with the gradients from :func:`critic_gradients` and :func:`actor_gradients`
        instead of autograd. With ``config.compile`` those two functions run compiled (on CUDA,
        replayed as CUDA graphs)."""
        critic, actor, critic_target, actor_target = self._nets
        scale, bias = self._action_scale_bias
        dt = self._compute_dtype
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last update's graph outputs may be reused now
        # critic step
        grads, loss_q, q, delta = self._critic_gradients(critic, critic_target, actor_target, batch,
                                                         self.config.gamma, scale, bias, dt)  # q, delta: (B, 1)
        self._check_finite("critic", loss_q, grads, batch)
        if self._measure_critic():
            record_critic(self.health, grads, q, delta)
        q_mean = batch_mean(q)
        set_grads(critic, grads)
        adam_step(self.critic_optimizer)
        if self.num_updates % self.config.policy_frequency:  # critic only this time
            self.num_updates += 1
            return loss_q, self._last_actor_loss, q_mean
        # actor step (through the critic as the critic step left it)
        grads, loss_pi, tanh_out = self._actor_gradients(actor, critic, batch.obs, scale, bias, dt)
        self._check_finite("actor", loss_pi, grads, batch)
        if self._measure_actor():
            record_actor(self.health, grads, tanh_out)
        set_grads(actor, grads)
        adam_step(self.actor_optimizer)
        # targets
        soft_update(self._target_params, self._online_params, self.config.tau)
        self.num_updates += 1
        if self._cuda_graphs:  # a CUDA graph overwrites its outputs at its next replay; the caller keeps these
            loss_q, loss_pi, q_mean = loss_q.clone(), loss_pi.clone(), q_mean.clone()
        self._last_actor_loss = loss_pi
        return loss_q, loss_pi, q_mean


def _grads_of(params: list[torch.Tensor]) -> Weights:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    return list(zip(grads[::2], grads[1::2]))
