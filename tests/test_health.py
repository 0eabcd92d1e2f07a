"""The health signals of the metrics rows (issue 13, item 3) against direct computation: the equations
written out with autograd on copies of a tiny network, rows against the replay buffer's own actions."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.agents.group import DDPGGroup
from ddpgkit.algo.health import TANH_SATURATION, health_values, health_warnings, new_health, record_critic
from ddpgkit.algo.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgkit.training.loop import Callback

TINY = DDPGConfig(hidden=(6, 5), batch_size=16, buffer_size=500, learning_starts=0, total_steps=100,
                  health_interval=1, eval_interval=0, eval_episodes=1, checkpoint_interval=0)


def _saturating(agent):
    """Scale the actor's last layer so that part of μ's pre-tanh outputs lie beyond tanh's saturation."""
    with torch.no_grad():
        agent.actor.net.linears[-1].weight.mul_(15.0)
        agent.actor_target.net.linears[-1].weight.mul_(15.0)
    return agent


def _random_rows(agent, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, agent.buffer.width, generator=g)  # (B, width)
    rows[:, -2:] = (rows[:, -2:] > 1.0).float()  # some terminated / truncated flags
    return rows


def _random_batch(agent, n=16, seed=0):
    return agent.buffer.split(_random_rows(agent, n, seed))


def _pre_tanh(actor, obs):
    """μ's last pre-activation z, layer by layer: relu(W x + b) through the hidden layers, then W x + b."""
    x = obs
    layers = actor.net.linears
    for layer in layers[:-1]:
        x = torch.relu(x @ layer.weight.T + layer.bias)
    return x @ layers[-1].weight.T + layers[-1].bias  # (B, act_dim)


def _critic_signals(agent, batch):
    """The critic step's signals, written out on a copy of the critic before the update."""
    critic = copy.deepcopy(agent.critic)
    with torch.no_grad():
        next_q = agent.critic_target(batch.next_obs, agent.actor_target(batch.next_obs))
        y = batch.reward + agent.config.gamma * (1.0 - batch.terminated) * next_q  # (B, 1)
    q = critic(batch.obs, batch.action)  # (B, 1)
    grads = torch.autograd.grad(((q - y) ** 2).mean(), list(critic.parameters()))
    delta, q = (q - y).detach(), q.detach()
    return {"critic_grad_norm": math.sqrt(sum(float((g ** 2).sum()) for g in grads)),
            "td_error_mean": float(delta.abs().mean()), "td_error_max": float(delta.abs().max()),
            "q_max": float(q.max()), "q_min": float(q.min())}


def _actor_signals(actor, critic, batch):
    """The actor step's signals: ∇_θ of −mean Q(s, μ(s)) through ``critic`` (the critic the actor step
    sees: the one the critic step left), and the share of saturated pre-tanh outputs."""
    actor = copy.deepcopy(actor)
    grads = torch.autograd.grad(-critic(batch.obs, actor(batch.obs)).mean(), list(actor.parameters()))
    z = _pre_tanh(actor, batch.obs).detach()
    return {"actor_grad_norm": math.sqrt(sum(float((g ** 2).sum()) for g in grads)),
            "tanh_saturated": float((1.0 - torch.tanh(z) ** 2 < 0.01).float().mean())}


def _update_and_direct(agent, batch, members=None):
    """``agent.update(batch)`` (a group's: ``members`` with their own batches), and each agent's signals
    of that update written out."""
    members = members or [(agent, batch)]
    critics = [_critic_signals(m, b) for m, b in members]
    actors = [copy.deepcopy(m.actor) for m, _ in members]
    agent.update(batch)
    return [{**c, **_actor_signals(a, m.critic, b)} for c, a, (m, b) in zip(critics, actors, members)]


def _close(ours, ref, rtol=1e-4):
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], rel=rtol, abs=1e-6), k


@pytest.mark.parametrize("backward", ["handwritten", "autograd"])
def test_signals_of_one_update_equal_direct_computation(backward):
    agent = _saturating(DDPG("Pendulum-v1", TINY.replace(backward=backward), seed=3))
    [ref] = _update_and_direct(agent, _random_batch(agent))
    assert 0 < ref["tanh_saturated"] < 1  # the test covers both sides of the threshold
    _close(health_values(agent.learner.health), ref)


def test_signals_aggregate_over_updates_mean_max_min():
    agent = _saturating(DDPG("Pendulum-v1", TINY, seed=4))
    refs = [_update_and_direct(agent, _random_batch(agent, seed=k))[0] for k in range(3)]
    mean = {k: float(np.mean([r[k] for r in refs])) for k in refs[0]}
    expected = {**mean, "td_error_max": max(r["td_error_max"] for r in refs),
                "q_max": max(r["q_max"] for r in refs), "q_min": min(r["q_min"] for r in refs)}
    _close(health_values(agent.learner.health), expected)


def test_health_interval_measures_every_nth_critic_and_actor_step():
    # 4 updates, every 2nd measured: critic steps 0 and 2; with policy_frequency 2 the actor steps are
    # updates 0 and 2 (actor steps 0 and 1), of which actor step 0 is measured
    agent = DDPG("Pendulum-v1", TINY.replace(health_interval=2, policy_frequency=2), seed=0)
    for k in range(4):
        agent.update(_random_batch(agent, seed=k))
    critic_n, actor_n = agent.learner.health[0].item(), agent.learner.health[6].item()
    assert (critic_n, actor_n) == (2, 1)
    never = DDPG("Pendulum-v1", TINY.replace(health_interval=0), seed=0)
    never.update(_random_batch(never))
    assert health_values(never.learner.health) == dict.fromkeys(health_values(never.learner.health))  # all None


def test_group_signals_are_each_members_own():
    group = DDPGGroup.create("Pendulum-v1", TINY, seeds=[0, 1])
    for m in group.members:
        _saturating(m)  # the members' tensors are views of the group's: this scales the stacked layer
    rows = torch.stack([_random_rows(m, seed=k) for k, m in enumerate(group.members)])  # (N, B, width)
    split = group.members[0].buffer.split
    refs = _update_and_direct(group, split(rows), [(m, split(rows[k])) for k, m in enumerate(group.members)])
    for k, m in enumerate(group.members):
        _close(health_values(m.learner.health), refs[k])  # m.learner.health is row k of the group's record
    assert refs[0]["critic_grad_norm"] != refs[1]["critic_grad_norm"]


def test_record_takes_q_min_as_the_minimum():
    record = new_health((), "cpu")
    grads = [(torch.ones(2, 2), torch.ones(2))]
    record_critic(record, grads, torch.tensor([[-3.0], [5.0]]), torch.tensor([[0.5], [-2.0]]))
    record_critic(record, grads, torch.tensor([[-1.0], [7.0]]), torch.tensor([[0.0], [1.0]]))
    values = health_values(record)
    assert values["q_min"] == -3.0 and values["q_max"] == 7.0 and values["td_error_max"] == 2.0
    assert values["td_error_mean"] == pytest.approx((1.25 + 0.5) / 2)
    assert values["critic_grad_norm"] == pytest.approx(math.sqrt(6))
    assert values["actor_grad_norm"] is None and values["tanh_saturated"] is None


def test_tanh_saturation_threshold_is_where_the_derivative_falls_below_one_percent():
    z = math.atanh(TANH_SATURATION)
    assert 1 - math.tanh(z) ** 2 == pytest.approx(0.01)
    assert z == pytest.approx(2.993, abs=1e-3)


def test_rows_carry_the_signals_and_the_actions_at_the_bounds(tmp_path):
    # noise of 1.5x the action scale: many exploration actions are clipped to the bounds
    cfg = TINY.replace(total_steps=650, learning_starts=250, noise_scale=1.5, health_interval=3, eval_interval=400,
                       buffer_size=1000, eval_episodes=1)
    agent = DDPG("Pendulum-v1", cfg, seed=1).learn()
    rows = agent.trainer.history
    actions = agent.buffer.data[:agent.buffer.size, agent.obs_dim:agent.obs_dim + agent.act_dim]  # (T, act_dim)
    at_bound = (actions.abs() == 2.0).float()  # Pendulum's torque bounds are ±2
    previous = 0
    for row in rows:
        start = max(previous, cfg.learning_starts)
        if row["step"] > start:
            assert row["action_at_bound"] == pytest.approx(float(at_bound[start:row["step"]].mean()))
            assert row["noise_rms"] == pytest.approx(3.0, rel=0.15)  # σ = 1.5 × scale 2, clipped or not
        else:  # warm-up, or a second row at the same step
            assert row["action_at_bound"] is None and row["noise_rms"] is None
        measured = row["step"] > max(previous, cfg.learning_starts)
        assert (row["critic_grad_norm"] is not None) == measured
        previous = row["step"]
    learning = [r for r in rows if r["critic_grad_norm"] is not None]
    assert learning and all(0 < r["action_at_bound"] < 1 for r in learning)
    assert all(r["q_min"] <= r["q_max"] and r["td_error_mean"] <= r["td_error_max"] for r in learning)


def test_noise_rms_is_the_root_mean_square_of_what_was_drawn():
    scale = torch.tensor([0.3, 2.0])
    for make in (lambda: GaussianNoise(scale, seed=7), lambda: OrnsteinUhlenbeckNoise(scale, seed=7)):
        noise, twin = make(), make()
        drawn = torch.stack([noise.draw() for _ in range(50)])  # (50, 2)
        assert torch.equal(drawn, torch.stack([twin.sample() for _ in range(50)]))  # draw() is sample()
        state = noise.state_dict()
        assert noise.pop_rms() == pytest.approx(float(drawn.square().mean().sqrt()), rel=1e-6)
        assert noise.pop_rms() is None  # counting starts anew
        restored = make()
        restored.load_state_dict(state)
        assert restored.pop_rms() == pytest.approx(float(drawn.square().mean().sqrt()), rel=1e-6)


def test_health_record_survives_a_checkpoint_mid_row(tmp_path):
    class StopAt130(Callback):
        def on_step(self, trainer):
            return trainer.step < 130

    agent = DDPG("Pendulum-v1", TINY.replace(total_steps=1000, learning_starts=50), seed=2)
    agent.learn(callback=StopAt130())
    assert agent.learner.health[0].item() > 0  # updates since the last row (the episode has not ended)
    agent.save(tmp_path / "ckpt", training_state=True)
    loaded = DDPG.load(tmp_path / "ckpt", training_state=True)
    assert torch.equal(loaded.learner.health, agent.learner.health)
    assert loaded.noise.pop_rms() == agent.noise.pop_rms()


def test_health_warnings_read_the_last_row_with_signals():
    healthy = {"step": 400, "critic_grad_norm": 5.0, "actor_grad_norm": 0.3, "tanh_saturated": 0.4,
               "action_at_bound": 0.2}
    evaluation = {"step": 400, "critic_grad_norm": None, "eval_mean": -150.0}
    assert health_warnings([healthy, evaluation]) == []
    assert health_warnings([evaluation]) == []  # nothing measured yet
    dead = {**healthy, "step": 600, "actor_grad_norm": 0.0}
    [line] = health_warnings([healthy, dead, evaluation])
    assert "exactly 0 at step 600" in line
    pinned = {**healthy, "step": 800, "tanh_saturated": 0.995, "action_at_bound": 1.0}
    lines = health_warnings([dead, pinned])  # the last row counts: the actor's gradient recovered
    assert len(lines) == 2
    assert lines[0].startswith("99.5% of the actor's pre-tanh outputs were saturated at step 800")
    assert lines[1].startswith("100.0% of the exploration actions sat at the action bounds")


def test_a_saturated_actor_is_named_at_the_end_of_training(tmp_path, capsys):
    from tests.clihelp import run_cli

    # last layers drawn from ±30: every pre-tanh output of the actor is far beyond tanh's saturation
    r = run_cli(capsys, "train", "Pendulum-v1", "--steps", "300", "--learning-starts", "100", "--hidden", "16,16",
                "--final-layer-init", "30", "--eval-interval", "0", "--eval-episodes", "1", "--batch-size", "32",
                "--out", tmp_path / "run")
    assert r.code == 0, r.err
    assert "warning: 100.0% of the actor's pre-tanh outputs were saturated at step 300" in r.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["health_warnings"] and "saturated" in summary["health_warnings"][0]


def test_a_checkpoint_with_a_bad_health_record_or_noise_count_is_refused(tmp_path):
    from ddpgkit.errors import CheckpointError
    from ddpgkit.storage.schema import upgrade
    from ddpgkit.training.state import restore_training_state, training_state

    agent = DDPG("Pendulum-v1", TINY.replace(total_steps=100, learning_starts=20), seed=0).learn()

    def state():  # the training state, its JSON as a manifest holds it, and a reader of its buffer's chunks
        tensors, meta = training_state(agent)
        chunks = {f"c{k}": {"rows": agent.buffer.chunk(k)} for k, _ in agent.buffer.chunks()}
        meta["buffer"]["chunk_files"] = list(chunks)
        return tensors, json.loads(json.dumps(meta)), chunks.__getitem__

    for key, bad in [("learner.health", torch.full((9,), math.nan)), ("learner.health", torch.zeros(3)),
                     ("learner.last_actor_loss", torch.tensor(math.nan)), ("learner.last_actor_loss", torch.zeros(2)),
                     ("noise.drawn", torch.tensor([-1.0, 5.0], dtype=torch.float64)),
                     ("noise.drawn", torch.tensor([1.0, 2.5], dtype=torch.float64))]:
        tensors, meta, read = state()
        tensors[key] = bad
        fresh = DDPG("Pendulum-v1", agent.config)
        with pytest.raises(CheckpointError, match="training state is inconsistent") as e:
            restore_training_state(fresh, tensors, meta, "ckpt", read)
        assert "\n" not in str(e.value)
    # a checkpoint of format 1 from before the signals (no health record, no noise count): the upgrade gives an
    # empty record and count, as that version's loader did
    tensors, meta, read = state()
    v1 = {k.removeprefix("learner."): v for k, v in tensors.items()
          if k not in ("learner.health", "learner.last_actor_loss", "noise.drawn")}
    v1_meta = {"version": 1, **meta["learner"], **{k: v for k, v in meta.items() if k != "learner"}}
    meta2, files = upgrade(1, {"training": v1_meta}, {"training": v1})
    fresh = DDPG("Pendulum-v1", agent.config)
    restore_training_state(fresh, files["training"], meta2["training"], "ckpt", read)
    assert health_values(fresh.learner.health) == dict.fromkeys(health_values(fresh.learner.health))
    assert fresh.noise.pop_rms() is None
