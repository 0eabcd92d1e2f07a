"""The DDPG update against its equations written out by hand."""

import copy
import shutil

import pytest
import torch

from ddpgkit.algo.ddpg import actor_loss, critic_loss, soft_update, td_target
from ddpgkit.data.buffer import Batch
from ddpgkit.nn import Actor, Critic

from tests.markers import needs_bf16


def make_batch(B=6, obs_dim=3, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(B, obs_dim, generator=g),
        action=torch.rand(B, act_dim, generator=g) * 2 - 1,
        reward=torch.randn(B, 1, generator=g),
        next_obs=torch.randn(B, obs_dim, generator=g),
        terminated=torch.tensor([[1.0], [0.0], [0.0], [1.0], [0.0], [0.0]])[:B],
        truncated=torch.tensor([[0.0], [1.0], [0.0], [0.0], [1.0], [0.0]])[:B],
    )


def nets(seed=0, obs_dim=3, act_dim=2):
    torch.manual_seed(seed)
    actor = Actor(obs_dim, [-1.0] * act_dim, [1.0] * act_dim, hidden=(16, 16))
    critic = Critic(obs_dim, act_dim, hidden=(16, 16))
    return actor, critic, copy.deepcopy(actor), copy.deepcopy(critic)


def test_td_target_terminated_stops_bootstrap_truncated_does_not():
    r = torch.tensor([[1.0], [1.0], [1.0]])
    next_q = torch.tensor([[10.0], [10.0], [10.0]])
    terminated = torch.tensor([[1.0], [0.0], [0.0]])  # row 1: truncated (time limit), row 2: ongoing
    y = td_target(r, terminated, next_q, gamma=0.9)
    assert y.tolist() == [[1.0], [1.0 + 0.9 * 10.0], [1.0 + 0.9 * 10.0]]
    assert y.shape == (3, 1)


def test_critic_loss_is_mse_to_the_written_target():
    actor, critic, actor_t, critic_t = nets()
    with torch.no_grad():  # make the targets differ from the online nets
        for p in actor_t.parameters():
            p.add_(0.1)
    b = make_batch()
    gamma = 0.97
    loss, q, target = critic_loss(critic, critic_t, actor_t, b, gamma)
    expected_q = critic(b.obs, b.action)
    with torch.no_grad():
        y = torch.empty(6, 1)
        for i in range(6):  # the equation, one transition at a time
            s2 = b.next_obs[i:i + 1]
            bootstrap = 0.0 if b.terminated[i, 0] == 1.0 else gamma * critic_t(s2, actor_t(s2))[0, 0]
            y[i, 0] = b.reward[i, 0] + bootstrap
    torch.testing.assert_close(loss, ((expected_q - y) ** 2).mean())
    torch.testing.assert_close(q, expected_q.detach())
    torch.testing.assert_close(target, y)
    assert q.shape == target.shape == (6, 1)


def test_critic_loss_gradient_reaches_only_the_critic():
    actor, critic, actor_t, critic_t = nets()
    loss, _, _ = critic_loss(critic, critic_t, actor_t, make_batch(), 0.99)
    loss.backward()
    assert all(p.grad is not None for p in critic.parameters())
    assert all(p.grad is None for m in (actor, actor_t, critic_t) for p in m.parameters())


def test_actor_loss_is_minus_mean_q():
    actor, critic, *_ = nets()
    obs = make_batch().obs
    torch.testing.assert_close(actor_loss(actor, critic, obs), -critic(obs, actor(obs)).mean())


def test_soft_update_formula():
    torch.manual_seed(0)
    online, target = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    before = [p.clone() for p in target.parameters()]
    tau = 0.1
    soft_update(target, online, tau)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, tau * o + (1 - tau) * b)
    soft_update(target, online, 1.0)  # tau = 1 copies
    for t, o in zip(target.parameters(), online.parameters()):
        torch.testing.assert_close(t, o, rtol=0, atol=0)


@pytest.mark.parametrize("backward", ["handwritten", "autograd"])
def test_agent_update_isolates_gradients_and_moves_targets_by_tau(backward):
    from ddpgkit import DDPG, DDPGConfig

    cfg = DDPGConfig(hidden=(16, 16), total_steps=100, learning_starts=10, batch_size=6, tau=0.25, backward=backward)
    agent = DDPG("ddpgkit/Mirror-v0", cfg)
    b = make_batch(obs_dim=2, act_dim=2)
    b = b._replace(obs=b.obs[:, :2], next_obs=b.next_obs[:, :2])

    # The critic step alone, as the agent does it, and the actor step on the updated critic.
    critic_ref = copy.deepcopy(agent.critic)
    actor_ref = copy.deepcopy(agent.actor)
    opt_c = torch.optim.Adam(critic_ref.parameters(), lr=cfg.critic_lr)
    loss_q, _, _ = critic_loss(critic_ref, agent.critic_target, agent.actor_target, b, cfg.gamma)
    opt_c.zero_grad()
    loss_q.backward()
    critic_grads = [p.grad.clone() for p in critic_ref.parameters()]  # ∇_φ L alone
    opt_c.step()
    critic_after = [p.clone() for p in critic_ref.parameters()]
    opt_a = torch.optim.Adam(actor_ref.parameters(), lr=cfg.actor_lr)
    loss_pi = actor_loss(actor_ref, critic_ref, b.obs)
    opt_a.zero_grad()
    loss_pi.backward()
    opt_a.step()
    # the actor's step must leave the critic exactly as the critic's step left it
    for p, q in zip(critic_ref.parameters(), critic_after):
        assert torch.equal(p, q)

    targets_before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(b)
    for p, q in zip(agent.critic.parameters(), critic_ref.parameters()):
        torch.testing.assert_close(p, q)
    for p, q in zip(agent.actor.parameters(), actor_ref.parameters()):
        torch.testing.assert_close(p, q)
    # the critic's gradients after the whole update are ∇_φ L of its own step: the actor's backward
    # pass through Q(s, μ(s)) added nothing to them
    for p, g in zip(agent.critic.parameters(), critic_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-6, atol=1e-8)
    assert not torch.allclose(loss_pi.new_tensor(0.0), critic_grads[0].abs().sum())  # a real gradient
    for t, b0, o in zip(agent.critic_target.parameters(), targets_before, agent.critic.parameters()):
        torch.testing.assert_close(t, 0.25 * o + 0.75 * b0)
    assert not any(p.requires_grad for p in agent.critic_target.parameters())


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_gamma_extremes(gamma):
    r, nq, d = torch.ones(2, 1), torch.full((2, 1), 5.0), torch.zeros(2, 1)
    assert td_target(r, d, nq, gamma).tolist() == [[1.0 + gamma * 5.0]] * 2


@pytest.mark.parametrize("activation, hidden, action_layer", [("relu", (32, 32), 0), ("tanh", (32, 32), 0),
                                                              ("relu", (32, 24), 1), ("tanh", (16, 32, 24), 2)])
def test_handwritten_and_autograd_updates_train_identically(activation, hidden, action_layer):
    """Also for the paper's critic, the action entering at a later hidden layer (action_layer > 0)."""
    from ddpgkit import DDPG, DDPGConfig

    runs = []
    for backward in ("autograd", "handwritten"):
        cfg = DDPGConfig(hidden=hidden, activation=activation, batch_size=32, total_steps=500, learning_starts=100,
                         eval_interval=0, eval_episodes=1, critic_weight_decay=1e-2, backward=backward,
                         critic_action_layer=action_layer)
        runs.append(DDPG("Pendulum-v1", cfg, seed=4).learn())
    a, b = (r.model_tensors() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)  # every weight of all four networks, bit for bit
    losses = [[(row["critic_loss"], row["actor_loss"], row["q_mean"]) for row in r.trainer.history] for r in runs]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("kernel", ["private", "public"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_step_equals_optimizer_step_bit_for_bit(weight_decay, kernel, monkeypatch):
    """Both ways adam_step calls the fused kernel — torch's private kernel where this torch has it,
    else the public functional Adam (forced here as a torch without the private one would) — give
    what optimizer.step() gives, bit for bit."""
    from ddpgkit.algo import optim
    from ddpgkit.algo.optim import adam_step, make_adam

    if kernel == "public":
        monkeypatch.setattr(optim, "FUSED_KERNEL", None)
    else:
        assert optim.FUSED_KERNEL is not None, "torch 2.13 has torch._fused_adam_; the fast path would be the fallback"

    torch.manual_seed(0)
    nets_ = [torch.nn.Linear(5, 3), copy.deepcopy(torch.nn.Linear(5, 3))]
    nets_[1].load_state_dict(nets_[0].state_dict())
    opts = [make_adam(list(n.parameters()), 1e-2, weight_decay) for n in nets_]
    g = torch.Generator().manual_seed(1)
    fast = []
    for step in range(6):
        grads = [torch.randn(p.shape, generator=g) for p in nets_[0].parameters()]
        for net in nets_:
            for p, gr in zip(net.parameters(), grads):
                p.grad = gr.clone()
        opts[0].step()
        fast.append(adam_step(opts[1]))  # the first call creates the state through optimizer.step()
        if step == 2:  # a state loaded from a state dict (new tensors) is picked up as well
            opts[1].load_state_dict(copy.deepcopy(opts[1].state_dict()))
    # the fast path really ran (a silent fallback to optimizer.step() would pass the equality below)
    assert fast == [False, True, True, True, True, True]
    for p, q in zip(nets_[0].parameters(), nets_[1].parameters()):
        assert torch.equal(p, q)
    for p, q in zip(nets_[0].parameters(), nets_[1].parameters()):
        s, t = opts[0].state[p], opts[1].state[q]
        assert all(torch.equal(s[k], t[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert float(opts[1].state[next(nets_[1].parameters())]["step"]) == 6


def test_adam_fast_path_guard():
    """Only settings the fast call reproduces exactly take it: a param group without a key that only
    newer torch releases have still does (optimizer.step() is not called, and the numbers are step()'s); an
    unknown key or a non-plain setting falls back to optimizer.step()."""
    from ddpgkit.algo.optim import adam_step, fast_path_applies, make_adam

    def fresh():
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2)
        opt = make_adam(list(net.parameters()), 1e-2)
        for p in net.parameters():
            p.grad = torch.ones_like(p)
        adam_step(opt)  # creates the state
        for p in net.parameters():
            p.grad = torch.linspace(-1.0, 2.0, p.numel()).reshape(p.shape)
        return net, opt

    def counted(opt):  # optimizer.step, its calls counted
        calls, step = [], opt.step
        opt.step = lambda *a, **k: (calls.append(1), step(*a, **k))[1]
        return calls

    def same(a, a_opt, b, b_opt):
        return all(torch.equal(p, q) and all(torch.equal(a_opt.state[p][k], b_opt.state[q][k])
                                             for k in ("step", "exp_avg", "exp_avg_sq"))
                   for p, q in zip(a.parameters(), b.parameters()))

    net, opt = fresh()
    reference, ref_opt = fresh()
    del opt.param_groups[0]["decoupled_weight_decay"]  # as in torch releases before the key existed
    calls = counted(opt)
    assert fast_path_applies(opt) and adam_step(opt) and calls == []  # the fast call ran, not step()
    ref_opt.step()
    assert same(net, opt, reference, ref_opt)
    for change in ({"maximize": True}, {"brand_new_option": 1}, {"lr": torch.tensor(0.01)}):
        net, opt = fresh()
        reference, ref_opt = fresh()
        opt.param_groups[0].update(change)
        ref_opt.param_groups[0].update(change)
        calls = counted(opt)
        assert not fast_path_applies(opt) and adam_step(opt) is False and calls == [1]
        ref_opt.step()
        assert same(net, opt, reference, ref_opt)


def test_the_agents_update_takes_the_fast_adam_path():
    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.algo.optim import fast_path_applies

    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(16, 16), batch_size=8, total_steps=60, learning_starts=20,
                                           eval_episodes=1))
    agent.learn(40)
    assert agent.learner.num_updates == 20
    assert fast_path_applies(agent.learner.critic_optimizer) and fast_path_applies(agent.learner.actor_optimizer)


@needs_bf16
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bf16_handwritten_gradients_match_fp32_to_bf16_accuracy(seed):
    """The bf16 update's gradients (hidden-to-hidden products in bfloat16) against the fp32
    hand-written ones (bit-identical to autograd, tested above) on the same networks and batch."""
    from ddpgkit import DDPG, DDPGConfig

    grads = {}
    for precision in ("fp32", "bf16"):
        agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(64, 64), batch_size=64, precision=precision), seed=seed)
        rows = torch.randn(64, agent.buffer.width, generator=torch.Generator().manual_seed(0))
        rows[:, -2:] = (rows[:, -2:] > 1.0).float()
        agent.update(agent.buffer.split(rows))
        grads[precision] = [p.grad.clone() for p in agent.learner._critic_params + agent.learner._actor_params]
        assert all(g.dtype == torch.float32 for g in grads[precision])
    assert not all(torch.equal(a, b) for a, b in zip(grads["fp32"], grads["bf16"]))  # bf16 did run
    for a, b in zip(grads["fp32"], grads["bf16"]):
        # bf16 keeps 8 significant bits; the first layers' gradients pass two bf16 products and the ReLU
        # masks of bf16 activations: up to ~5% relative error seen (seeds 0-3), a wrong formula gives ~100%
        assert (a - b).norm() <= 0.1 * a.norm() + 1e-6


@needs_bf16
def test_bf16_training_is_reproducible():
    from ddpgkit import DDPG, DDPGConfig

    cfg = DDPGConfig(hidden=(32, 32), batch_size=32, total_steps=400, learning_starts=100, eval_interval=0,
                     eval_episodes=1, precision="bf16")
    runs = [DDPG("Pendulum-v1", cfg, seed=5).learn() for _ in range(2)]
    a, b = (r.model_tensors() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.isfinite(t).all() for t in a.values())
    assert all(t.dtype == torch.float32 for t in a.values())  # the parameters stay fp32


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
@pytest.mark.parametrize("action_layer", [0, 1])
def test_compiled_update_matches_the_eager_one(action_layer):
    """compile=True runs the same gradient functions through torch.compile (inductor): fused kernels
    round differently, so the check is closeness to the eager update, not bit equality."""
    from ddpgkit import DDPG, DDPGConfig

    agents = [DDPG("Pendulum-v1", DDPGConfig(hidden=(32, 32), batch_size=64, compile=c,
                                             critic_action_layer=action_layer), seed=2) for c in (False, True)]
    rows = torch.randn(64, agents[0].buffer.width, generator=torch.Generator().manual_seed(0))
    rows[:, -2:] = (rows[:, -2:] > 1.0).float()
    batch = agents[0].buffer.split(rows)
    outs = [agent.update(batch) for agent in agents]
    for a, b in zip(*outs):  # critic loss, actor loss, mean Q
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    params = [agent.learner._critic_params + agent.learner._actor_params for agent in agents]
    for a, b in zip(*params):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    ta, tb = agents[0].model_tensors(), agents[1].model_tensors()
    assert all(torch.allclose(ta[k], tb[k], rtol=1e-5, atol=1e-7) for k in ta)
