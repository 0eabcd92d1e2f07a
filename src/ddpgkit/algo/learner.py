"""The update, written once: one DDPG gradient step in the paper's order (Lillicrap et al. 2015, Algorithm 1)
on an actor μ_θ, a critic Q_φ, their targets and two Adam optimisers::

    critic step:  y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))                  (algo/ddpg.py: target_y, td_target)
                  φ ← Adam(φ, ∇_φ 1/B Σ (Q_φ(s, a) − y)²)               (critic_loss)
    actor step:   θ ← Adam(θ, ∇_θ −1/B Σ Q_φ(s, μ_θ(s)))                (actor_loss; every policy_frequency-th update)
    targets:      θ' ← τ θ + (1 − τ) θ',  φ' ← τ φ + (1 − τ) φ'         (soft_update; with the actor step)

The DDPG family's later fixes are additions to these lines, each off unless the config asks for it: a second
critic and the clipped double-Q target (``n_critics = 2``: both critics step on one target, the actor follows
the first, both targets are soft-updated), target policy smoothing (``target_noise``: ε drawn here, from the
learner's own generator, and passed to the target), n-step returns (``n_step``: the batch itself carries
them, :mod:`ddpgkit.data.nstep`). Together with ``policy_frequency`` = 2 they are TD3 (Fujimoto et al. 2018).
The HER paper's DDPG (Andrychowicz et al. 2017) adds an action penalty to the actor's loss (``action_l2``:
:func:`~ddpgkit.algo.ddpg.actor_loss`); its relabelled goals arrive in the batch (:mod:`ddpgkit.data.her`).

:meth:`Learner.update` is that sequence, and it is the only one: the same lines run for one agent's
(B, ·) tensors and for N agents stacked into one ((N, B, ·), :meth:`Learner.stacked`, a group of seeds).
Around each gradient they do the same three things: the sentinel (NaN or inf in a loss or gradient raises
:class:`~ddpgkit.errors.NonFiniteUpdate` before anything is applied), the health record (every
``health_interval``-th step, :mod:`ddpgkit.algo.health`) and the Adam step (:mod:`ddpgkit.algo.optim`).

What varies is only how the two gradients are computed, chosen once by the config (:func:`gradient_functions`):

* ``backward = "handwritten"`` (the default): :func:`~ddpgkit.algo.gradients.critic_gradients` and
  :func:`~ddpgkit.algo.gradients.actor_gradients`, the backward pass written out; with ``compile`` the same
  two functions compiled (on CUDA replayed as CUDA graphs), with ``precision = "bf16"`` the hidden products
  in bfloat16;
* ``backward = "autograd"``: autograd on :mod:`ddpgkit.algo.ddpg`'s losses
  (:func:`~ddpgkit.algo.ddpg.autograd_critic_gradients`, :func:`~ddpgkit.algo.ddpg.autograd_actor_gradients`),
  bf16 under autocast.

In fp32 both give the same numbers bit for bit (tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch

from ..config.ddpg import DDPGConfig
from ..config.seeds import TARGET_NOISE_SEED_OFFSET
from ..data.buffer import Batch
from ..errors import NonFiniteUpdate
from ..nn.actor_critic import Actor, Critic
from ..nn.backward import Weights
from ..nn.mlp import MLP
from ..nn.stacked import stack_modules
from .ddpg import Smoothing, autograd_actor_gradients, autograd_critic_gradients, soft_update, target_policy_noise
from .gradients import actor_gradients, batch_mean, critic_gradients, critic_nets
from .health import new_health, record_actor, record_critic
from .optim import adam_step, link_adam_state, make_adam, stack_adam_state

# The non-finite check of the sentinel: one fused kernel over all gradients where this torch has it (the one
# GradScaler uses; private, so feature-detected here and tested against the public fallback, a reduction of
# every gradient's norm). With a scale of 1 it multiplies each gradient by 1.0: every value stays as it was.
NON_FINITE_KERNEL = getattr(torch, "_amp_foreach_non_finite_check_and_unscale_", None)

#: ``critic(batch, smoothing) -> (∇_φ L as [(∂W_i, ∂b_i)], L, Q(s, a) (B, 1), δ = Q − y (B, 1))`` (two critics:
#: both critics' gradients, Q and δ of both, (2B, 1))
CriticGradients = Callable[[Batch, Smoothing | None], tuple[Weights, torch.Tensor, torch.Tensor, torch.Tensor]]
#: ``actor(obs (B, obs_dim), want_tanh) -> (∇_θ L_μ as [(∂W_i, ∂b_i)], L_μ, μ's tanh output (B, act_dim) or None)``
ActorGradients = Callable[[torch.Tensor, bool], tuple[Weights, torch.Tensor, torch.Tensor | None]]


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


@dataclass(frozen=True)
class Networks:
    """The four networks an update trains: μ_θ, Q_φ and their targets (one agent's, or N stacked); with
    ``n_critics = 2`` also TD3's second critic Q_φ2 and its target."""

    actor: Actor
    critic: Critic
    actor_target: Actor
    critic_target: Critic
    critic2: Critic | None = None
    critic2_target: Critic | None = None


def refuse_changed_networks(nets: Networks) -> None:
    """ValueError if a layer of one of the networks' MLPs was replaced or carries a hook (:meth:`MLP.is_stock
    <ddpgkit.nn.mlp.MLP.is_stock>` false): the written-out update computes the network as built, and would
    silently train another one than the modules compute."""
    changed = [f.name for f in fields(nets) if getattr(nets, f.name) is not None
               for m in getattr(nets, f.name).modules() if isinstance(m, MLP) and not m.is_stock()]
    if changed:
        raise ValueError(f"{', '.join(sorted(set(changed)))}: a layer was replaced or carries a hook, and the "
                         "written-out update computes the network as built; train it with backward='autograd'")


def gradient_functions(nets: Networks, config: DDPGConfig) -> tuple[CriticGradients, ActorGradients, bool]:
    """The two gradient functions the config asks for (module doc), bound to ``nets``, and whether they run
    as CUDA graphs (``compile`` on CUDA), whose outputs the next replay overwrites."""
    bf16 = torch.bfloat16 if config.precision == "bf16" else None
    gamma, action_l2 = config.gamma, config.action_l2
    if config.backward == "autograd":
        actor, critic, actor_target, critic_target = nets.actor, nets.critic, nets.actor_target, nets.critic_target
        twin, twin_target = nets.critic2, nets.critic2_target
        return (lambda batch, smoothing: autograd_critic_gradients(critic, critic_target, actor_target, batch, gamma,
                                                                   bf16, twin, twin_target, smoothing),
                lambda obs, want_tanh: autograd_actor_gradients(actor, critic, obs, bf16, want_tanh, action_l2),
                False)
    refuse_changed_networks(nets)
    critic_fn, actor_fn = critic_gradients, actor_gradients
    device = nets.actor.action_scale.device
    cuda_graphs = config.compile and device.type == "cuda"
    if config.compile:
        # on CUDA, "reduce-overhead" also replays each compiled function as a CUDA graph: one launch instead of
        # dozens of small kernels, which is what a small network's update costs there
        mode = "reduce-overhead" if cuda_graphs else None
        critic_fn, actor_fn = torch.compile(critic_gradients, mode=mode), torch.compile(actor_gradients, mode=mode)
    # the MLPs and μ's scale and bias, looked up once (the modules stay where they are; loading copies in place)
    critic, actor = critic_nets(nets.critic), nets.actor.net
    critic_target, actor_target = critic_nets(nets.critic_target), nets.actor_target.net
    twin = critic_nets(nets.critic2) if nets.critic2 is not None else None
    twin_target = critic_nets(nets.critic2_target) if nets.critic2_target is not None else None
    scale, bias = nets.actor.action_scale, nets.actor.action_bias
    return (lambda batch, smoothing: critic_fn(critic, critic_target, actor_target, batch, gamma, scale, bias, bf16,
                                               twin, twin_target, smoothing),
            lambda obs, want_tanh: actor_fn(actor, critic, obs, scale, bias, bf16, action_l2),
            cuda_graphs)


class Learner:
    """DDPG's update of ``nets`` with two Adam optimisers: :meth:`update` (module doc).

    Args:
        nets: the four networks, one agent's or N stacked ones (:mod:`ddpgkit.nn.stacked`).
        config: the hyperparameters (γ, τ, learning rates, ``policy_frequency``, ``health_interval``, and
            which gradient functions: ``backward``, ``compile``, ``precision``).
        members: for N stacked agents, their names ("seed 3"), which the sentinel's message names; None for one.

    State, all of it in checkpoints (:mod:`ddpgkit.training.state`): the optimisers, ``num_updates`` (updates
    done), ``last_actor_loss`` (what an update without an actor step reports) and ``health``, the health
    signals since the last metrics row ((9,), or (N, 9)), which the training loop reads and empties; with
    ``target_noise`` > 0 the generator of the smoothing noise (``target_noise_generator``, a CPU generator
    seeded from ``config.seed``; stacked, each member's own).
    """

    def __init__(self, nets: Networks, config: DDPGConfig, members: Sequence[str] | None = None) -> None:
        self.nets, self.config = nets, config
        self.members = list(members) if members is not None else None
        self.device = nets.actor.action_scale.device
        shape = (len(self.members),) if self.members is not None else ()
        # parameter lists, gathered once: walking the module tree on every update costs real time
        self._actor_params = list(nets.actor.parameters())
        critics = [nets.critic] + ([nets.critic2] if nets.critic2 is not None else [])
        critic_targets = [nets.critic_target] + ([nets.critic2_target] if nets.critic2_target is not None else [])
        if len(critics) != config.n_critics or len(critic_targets) != config.n_critics:
            raise ValueError(f"the config asks for {config.n_critics} critics, the networks have {len(critics)}")
        self._critic_params = [p for c in critics for p in c.parameters()]  # the second critic's after the first's
        self._online_params = self._critic_params + self._actor_params
        self._target_params = [p for c in critic_targets for p in c.parameters()] + list(nets.actor_target.parameters())
        self.actor_optimizer = make_adam(self._actor_params, config.actor_lr)
        self.critic_optimizer = make_adam(self._critic_params, config.critic_lr, config.critic_weight_decay)
        self._critic_gradients, self._actor_gradients, self._cuda_graphs = gradient_functions(nets, config)
        #: the target policy smoothing noise's generator (target_noise > 0), on the CPU whatever the device
        self.target_noise_generator = (torch.Generator().manual_seed(config.seed + TARGET_NOISE_SEED_OFFSET)
                                       if config.target_noise > 0 else None)
        scale, bias = nets.actor.action_scale, nets.actor.action_bias
        self._action_bounds = (bias - scale, bias + scale)  # (act_dim,) each: the actions μ can take
        self.num_updates = 0
        self.last_actor_loss = torch.zeros(shape, device=self.device)
        self.health = new_health(shape, self.device)
        self._finite_scratch = torch.tensor([0.0, 1.0], device=self.device)  # the sentinel's (all_finite)
        self._stacked_from: list[Learner] = []  # the members' own learners, when stacked
        self._linked = True
        #: The indices of stacked agents that diverged. Their slices no longer learn (their gradients are zeroed,
        #: their Adam moments were), and the others go on exactly as they would have (every product is per agent).
        self.retired: set[int] = set()
        self._newly_retired: list[NonFiniteUpdate] = []
        self._frozen: dict[int, list[torch.Tensor]] = {}  # a retired member's weights (online, then targets)

    @classmethod
    def stacked(cls, learners: Sequence[Learner], names: Sequence[str], retired: Sequence[int] = ()) -> Learner:
        """One learner for N agents of one config: their networks stacked (N, ...), their Adam moments and
        step counts, update counts, last actor losses and health records too. Each member's learner is
        re-pointed to its slice (networks, Adam state, ``last_actor_loss``, ``health``), so that whatever
        reads a member — evaluation, its checkpoint — reads it as it is; train the members through this one.
        ``retired``: members that diverged before (a resumed group): their slices join frozen, their Adam state
        replaced by the others' step count and zero moments. Raises ValueError if the others' optimisers
        cannot be stacked (some have stepped and others not)."""
        active = [lr for k, lr in enumerate(learners) if k not in set(retired)]
        first = active[0] if active else learners[0]
        for k in retired:
            _adopt_adam_state(learners[k], first)
        fields = ("actor", "critic", "actor_target", "critic_target")
        if first.nets.critic2 is not None:
            fields += ("critic2", "critic2_target")
        nets = Networks(*(stack_modules([getattr(lr.nets, f) for lr in learners]) for f in fields))
        group = cls(nets, first.config, names)
        stack_adam_state(group.actor_optimizer, [lr.actor_optimizer for lr in learners])
        stack_adam_state(group.critic_optimizer, [lr.critic_optimizer for lr in learners])
        group._stacked_from = list(learners)
        group._linked = bool(group.critic_optimizer.state)
        group.num_updates = first.num_updates
        group.last_actor_loss.copy_(torch.stack([lr.last_actor_loss for lr in learners]))
        group.health.copy_(torch.stack([lr.health for lr in learners]))
        for k, lr in enumerate(learners):
            lr.last_actor_loss, lr.health = group.last_actor_loss[k], group.health[k]
        group.retired = set(retired)
        for k in retired:
            group._freeze(k)
        return group

    def pop_retired(self) -> list[NonFiniteUpdate]:
        """The members retired by the updates since the last call, each as the NonFiniteUpdate that retired it
        (its signal, its slice of the batch, its index)."""
        out, self._newly_retired = self._newly_retired, []
        return out

    # ---- the update -------------------------------------------------------------------------------

    def check_networks(self) -> None:
        """With the written-out update, :func:`refuse_changed_networks` on the networks as they are now: a layer
        replaced or hooked after the learner was made is refused where training starts (``learn``) and by each
        ``DDPG.update`` call; inside the loop, updates do not check (a check costs ~25 µs, a 64-64 update ~550 µs)."""
        if self.config.backward != "autograd":
            refuse_changed_networks(self.nets)

    @torch.no_grad()
    def update(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One DDPG gradient step on ``batch`` (fields (B, ·), or (N, B, ·) stacked): the critic, then on every
        ``policy_frequency``-th call the actor (through the critic as just updated) and both targets.

        Returns (critic loss L, actor loss L_μ = −J, mean Q(s, a)): 0-d tensors for one agent, (N,) for N; an update
        without an actor step reports the last actor loss.
        """
        cfg = self.config
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last update's graph outputs may be reused now
        # critic: minimise L(φ) = 1/B Σ (Q(s, a) − y)² (two critics: the sum of both, one target)
        grads, loss_q, q, delta = self._critic_gradients(batch, self._smoothing(batch))  # q, delta: (B, 1) or (2B, 1)
        self._check_finite("critic", loss_q, grads, batch)
        if self.retired:
            _zero_rows(grads, self.retired)
        if self._measure_critic():
            record_critic(self.health, grads, q.float(), delta.float())
        q_mean = batch_mean(q)
        self._apply(grads, self._critic_params, self.critic_optimizer)
        if self.num_updates % cfg.policy_frequency == 0:
            # actor: minimise L_μ(θ) = −J(θ) = −1/B Σ Q(s, μ(s)); the critic's weights get no gradient
            measure = self._measure_actor()
            grads, loss_pi, tanh_out = self._actor_gradients(batch.obs, measure)
            self._check_finite("actor", loss_pi, grads, batch)
            if self.retired:
                _zero_rows(grads, self.retired)
            if measure:
                assert tanh_out is not None
                record_actor(self.health, grads, tanh_out.float())
            self._apply(grads, self._actor_params, self.actor_optimizer)
            # targets: θ' ← τ θ + (1 − τ) θ', critic and actor in one call
            soft_update(self._target_params, self._online_params, cfg.tau)
            if self._cuda_graphs:  # a CUDA graph overwrites its outputs at its next replay; these are kept
                loss_q, loss_pi, q_mean = loss_q.clone(), loss_pi.clone(), q_mean.clone()
            self.last_actor_loss = loss_pi
        else:
            if self._cuda_graphs:
                loss_q, q_mean = loss_q.clone(), q_mean.clone()
            loss_pi = self.last_actor_loss
        self.num_updates += 1
        if self._frozen:
            self._hold_frozen()
        if self._stacked_from:
            self._sync_members()
        return loss_q, loss_pi, q_mean

    def _smoothing(self, batch: Batch) -> Smoothing | None:
        """Target policy smoothing for this batch (``target_noise`` > 0, else None): ε = clip(σ z, −c, c) · scale
        (:func:`~ddpgkit.algo.ddpg.target_policy_noise`), z (B, act_dim) from the learner's generator — stacked,
        (N, B, act_dim), each member's from its own, as it draws alone — and the bounds of μ's actions."""
        cfg = self.config
        if cfg.target_noise == 0:
            return None
        shape = tuple(batch.action.shape[-2:])  # (B, act_dim)
        if self._stacked_from:
            z = torch.stack([torch.randn(shape, generator=lr.target_noise_generator) for lr in self._stacked_from])
        else:
            z = torch.randn(shape, generator=self.target_noise_generator)  # (B, act_dim)
        scale = self.nets.actor.action_scale
        noise = target_policy_noise(z.to(self.device), cfg.target_noise, cfg.target_noise_clip, scale)
        return noise, *self._action_bounds

    @staticmethod
    def _apply(grads: Weights, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """The gradients as the parameters' ``.grad``, then one Adam step."""
        for (w, b), (dw, db) in zip(zip(params[::2], params[1::2]), grads):
            w.grad, b.grad = dw, db
        adam_step(optimizer)

    def _measure_critic(self) -> bool:
        """Whether this update's critic step adds to :attr:`health` (every ``health_interval``-th)."""
        every = self.config.health_interval
        return every > 0 and self.num_updates % every == 0

    def _measure_actor(self) -> bool:
        """Whether this update's actor step adds to :attr:`health` (every ``health_interval``-th actor step)."""
        every = self.config.health_interval
        return every > 0 and (self.num_updates // self.config.policy_frequency) % every == 0

    def _check_finite(self, what: str, loss: torch.Tensor, grads: Weights, batch: Batch) -> None:
        """The sentinel: NaN or inf in ``loss`` or a gradient, found before anything of this step is applied
        (:func:`all_finite`; the culprit is looked up only then). One agent: raise :class:`NonFiniteUpdate`.
        Stacked agents: retire each member whose slice is non-finite (:attr:`retired`; :meth:`pop_retired` says
        which), and raise only when every member has. An actor step's failure comes after this update's critic
        step was applied (the actor follows the critic as just updated, as in the paper); the message says so."""
        flat = [t for pair in grads for t in pair]
        if all_finite(loss, flat, self._finite_scratch):
            return
        bad_loss = ~torch.isfinite(loss.reshape(-1))  # (N,) or (1,)
        applied = "" if what == "critic" else " (this update's critic step was applied)"
        if self.members is None:
            signal = f"{what} loss" if bool(bad_loss.any()) else f"{what} gradient"
            raise NonFiniteUpdate(signal + applied, batch)
        bad = bad_loss.clone()
        for g in flat:
            bad |= ~torch.isfinite(g.reshape(len(self.members), -1)).all(dim=1)
        for k in bad.nonzero()[:, 0].tolist():
            if k in self.retired:
                continue
            signal = f"{what} {'loss' if bool(bad_loss[k]) else 'gradient'} of {self.members[k]}{applied}"
            self._newly_retired.append(NonFiniteUpdate(signal, batch.member(k), member=k))
            self.retired.add(k)
            self._freeze(k)
        if len(self.retired) == len(self.members):
            first = self._newly_retired[0] if self._newly_retired else NonFiniteUpdate(f"{what} loss", batch)
            raise NonFiniteUpdate(f"{first.signal}; every member of the group has diverged", first.batch,
                                  member=first.member)

    def _freeze(self, k: int) -> None:
        """Member ``k`` stops learning: its Adam moments zeroed (its gradients are zeroed from now on), and its
        weights as they are now kept, to be put back after every update (:meth:`_hold_frozen`: weight decay
        would still shrink its critic, and its targets would still follow its online networks)."""
        for opt in (self.actor_optimizer, self.critic_optimizer):
            for state in opt.state.values():
                for name in ("exp_avg", "exp_avg_sq"):
                    if name in state:
                        state[name][k].zero_()
        self._frozen[k] = [p[k].detach().clone() for p in self._online_params + self._target_params]

    def _hold_frozen(self) -> None:
        """Put every retired member's weights back as they were when it stopped (its slices alone)."""
        params = self._online_params + self._target_params
        for k, saved in self._frozen.items():
            for p, v in zip(params, saved):
                p[k].copy_(v)

    def _sync_members(self) -> None:
        """After an update of stacked agents: each member's count and last actor loss (a view of its slice), and
        (once the first step has made it) its Adam state as a view of its slice of the stacked one."""
        last = self.last_actor_loss  # (N,)
        for k, lr in enumerate(self._stacked_from):
            lr.num_updates = self.num_updates
            lr.last_actor_loss = last[k]
        if not self._linked:
            members = self._stacked_from
            self._linked = (link_adam_state(self.critic_optimizer, [lr.critic_optimizer for lr in members])
                            and link_adam_state(self.actor_optimizer, [lr.actor_optimizer for lr in members]))


def _zero_rows(grads: Weights, rows: set[int]) -> None:
    """Zero the retired members' slices of stacked gradients, in place (the others' slices are untouched)."""
    index = torch.tensor(sorted(rows), device=grads[0][0].device)
    for w, b in grads:
        w.index_fill_(0, index, 0.0)
        b.index_fill_(0, index, 0.0)


def _adopt_adam_state(learner: Learner, like: Learner) -> None:
    """Give a retired member's optimisers the state of ``like``'s (its step count, zero moments), so that its
    slice stacks with the others whatever step it diverged at; what it learned is kept, it learns no more."""
    pairs = ((learner.actor_optimizer, like.actor_optimizer), (learner.critic_optimizer, like.critic_optimizer))
    for opt, ref in pairs:
        params, ref_params = opt.param_groups[0]["params"], ref.param_groups[0]["params"]
        opt.state.clear()
        for p, q in zip(params, ref_params):
            st = ref.state.get(q)
            if st:
                opt.state[p] = {"step": st["step"].clone(), "exp_avg": torch.zeros_like(p),
                                "exp_avg_sq": torch.zeros_like(p)}
