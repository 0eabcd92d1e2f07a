"""Several seeds in one process: stacked networks, the batched update against each agent's own autograd,
determinism, group checkpoints and exact resume, `train --seeds`."""

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.agents.group import DDPGGroup, check_groupable, stackable
from ddpgkit.algo.ddpg import actor_loss, critic_loss
from ddpgkit.algo.gradients import actor_gradients, critic_gradients, critic_nets
from ddpgkit.config.seeds import parse_seeds
from ddpgkit.errors import ConfigError
from ddpgkit.experiments.run import run_experiment
from ddpgkit.nn.mlp import MLP
from ddpgkit.nn.stacked import stack_modules, stack_size
from ddpgkit.runtime import cpu_has_bf16
from ddpgkit.storage.checkpoint import CheckpointFiles
from ddpgkit.storage.rundir import list_checkpoints, read_metrics
from ddpgkit.training.callbacks import Checkpointer

from tests.clihelp import assert_one_line_error, run_cli, run_subprocess

TINY = DDPGConfig(hidden=(16, 16), total_steps=600, learning_starts=100, batch_size=32, buffer_size=5000,
                  eval_interval=200, eval_episodes=2, checkpoint_interval=200, keep_checkpoints=3)
TIMING = ("steps_per_s", "wall_s")


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- stacked storage -----------------------------------------------------------------------------

def test_stacked_modules_keep_values_and_members_become_views():
    torch.manual_seed(0)
    members = [MLP(3, 2, (5,)) for _ in range(3)]
    before = [copy.deepcopy(m.state_dict()) for m in members]
    stacked = stack_modules(members)
    assert stack_size(stacked) == 3
    assert stacked.linear0.weight.shape == (3, 5, 3) and stacked.linear1.bias.shape == (3, 2)
    for k, m in enumerate(members):
        assert identical(m.state_dict(), before[k])
    with torch.no_grad():
        stacked.linear0.weight[1].fill_(7.0)  # a write to the stack is a write to member 1, and only to it
    assert torch.all(members[1].linear0.weight == 7.0)
    assert torch.equal(members[0].linear0.weight, before[0]["linear0.weight"])
    with torch.no_grad():
        members[2].linear1.bias.zero_()  # and the other way round
    assert torch.all(stacked.linear1.bias[2] == 0)


def test_stacking_refuses_different_layouts():
    with pytest.raises(ValueError, match="linear0.weight"):
        stack_modules([MLP(3, 2, (5,)), MLP(3, 2, (6,))])
    with pytest.raises(ValueError, match="same class"):
        stack_modules([MLP(3, 2, (5,)), MLP(3, 2, (5, 5))])
    with pytest.raises(ValueError, match="at least one"):
        stack_modules([])


# ---- the batched update against each agent's own autograd ----------------------------------------

def _group(n=3, **changes):
    return DDPGGroup.create("Pendulum-v1", TINY.replace(**changes), seeds=range(n))


def _random_batch(group, batch_size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    width = group.members[0].buffer.width
    rows = torch.randn(len(group.members), batch_size, width, generator=g)  # (N, B, width)
    rows[..., -2:] = (rows[..., -2:] > 1.0).float()  # some terminated / truncated flags
    return group.members[0].buffer.split(rows), rows


@pytest.mark.parametrize("action_layer,activation", [(0, "relu"), (1, "relu"), (1, "tanh")])
def test_stacked_gradients_equal_each_agents_autograd(action_layer, activation):
    group = _group(critic_action_layer=action_layer, activation=activation)
    batch, rows = _random_batch(group)
    nets = group.learner.nets
    scale, bias = nets.actor.action_scale, nets.actor.action_bias
    with torch.no_grad():
        c_grads, c_loss, q, delta = critic_gradients(critic_nets(nets.critic), critic_nets(nets.critic_target),
                                                     nets.actor_target.net, batch, 0.99, scale, bias)
        a_grads, a_loss, _ = actor_gradients(nets.actor.net, critic_nets(nets.critic), batch.obs, scale, bias)
    q_mean = q.mean((1, 2))
    assert c_loss.shape == q_mean.shape == a_loss.shape == (3,)
    for k, m in enumerate(group.members):
        own = m.buffer.split(rows[k])  # (B, width): member k's own batch
        loss, q, y = critic_loss(m.critic, m.critic_target, m.actor_target, own, 0.99)
        torch.testing.assert_close(delta[k], q - y, rtol=1e-5, atol=1e-5)
        grads = torch.autograd.grad(loss, list(m.critic.parameters()))
        torch.testing.assert_close(c_loss[k], loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(q_mean[k], q.mean(), rtol=1e-5, atol=1e-6)
        flat = [g for pair in c_grads for g in pair]
        for ours, ref in zip(flat, grads):
            torch.testing.assert_close(ours[k], ref, rtol=1e-4, atol=1e-6)
        loss_pi = actor_loss(m.actor, m.critic, own.obs)
        grads = torch.autograd.grad(loss_pi, list(m.actor.parameters()))
        torch.testing.assert_close(a_loss[k], loss_pi.detach(), rtol=1e-5, atol=1e-6)
        for ours, ref in zip([g for pair in a_grads for g in pair], grads):
            torch.testing.assert_close(ours[k], ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy_frequency", [1, 2])
def test_a_group_update_equals_each_agent_updating_alone(policy_frequency):
    """Critic step, Adam, actor step, soft update: the group's members end where agents built with the same
    seeds, each updated alone on its slice of the batches, end (to float precision: bmm against mm)."""
    group = _group(policy_frequency=policy_frequency)
    alone = [DDPG("Pendulum-v1", TINY.replace(policy_frequency=policy_frequency), seed=s) for s in range(3)]
    for k, a in enumerate(alone):  # built exactly as the members were
        assert identical(a.model_tensors(), group.members[k].model_tensors())
    for step in range(4):
        batch, rows = _random_batch(group, seed=step)
        losses = group.update(batch)
        for k, a in enumerate(alone):
            own = a.update(a.buffer.split(rows[k]))
            for ours, ref in zip(losses, own):
                torch.testing.assert_close(ours[k], ref, rtol=1e-4, atol=1e-5)
    for k, a in enumerate(alone):
        m = group.members[k]
        assert m.learner.num_updates == a.learner.num_updates == 4
        ours, ref = m.model_tensors(), a.model_tensors()
        for name in ref:
            torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-5)
        for opt, ref_opt in ((m.learner.critic_optimizer, a.learner.critic_optimizer),
                             (m.learner.actor_optimizer, a.learner.actor_optimizer)):
            for p, q in zip(opt.param_groups[0]["params"], ref_opt.param_groups[0]["params"]):
                st, ref_st = opt.state[p], ref_opt.state[q]
                assert float(st["step"]) == float(ref_st["step"])
                torch.testing.assert_close(st["exp_avg"], ref_st["exp_avg"], rtol=1e-3, atol=1e-6)


def test_a_group_trains_the_same_numbers_every_time_and_members_start_as_single_runs():
    runs = []
    for _ in range(2):
        group = _group(n=2, total_steps=500)
        first = [copy.deepcopy(m.model_tensors()) for m in group.members]
        group.learn_until(500)
        runs.append(([m.trainer.history for m in group.members], [m.model_tensors() for m in group.members], first))
    (hist_a, models_a, first_a), (hist_b, models_b, _) = runs
    assert [numbers(h) for h in hist_a] == [numbers(h) for h in hist_b]
    assert all(identical(a, b) for a, b in zip(models_a, models_b))
    for k in range(2):  # initial weights: exactly those of a single run of that seed
        assert identical(first_a[k], DDPG("Pendulum-v1", TINY, seed=k).model_tensors())
    assert not identical(models_a[0], models_a[1])  # and the members are different agents


def test_a_group_member_learns_like_a_single_run_of_its_seed():
    """Member 0 of a group and a single run of seed 0 are two runs of that seed: the same initial weights and
    warm-up transitions bit for bit, the same first updates up to rounding (bmm and mm round differently, so
    the runs part slowly after that), and both learn: 3000 steps of the pendulum preset lift the return far
    from random."""
    cfg = DDPGConfig.preset("pendulum").replace(total_steps=3000, eval_interval=3000, eval_episodes=3)
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=[0, 1])
    single = DDPG("Pendulum-v1", cfg, seed=0)
    member = group.members[0]
    assert _same(member.model_tensors(), single.model_tensors())
    start = cfg.learning_starts
    group.learn_until(start)
    single.learn_until(start)  # the warm-up: no update yet
    assert torch.equal(member.buffer.data, single.buffer.data)
    assert _same(member.model_tensors(), single.model_tensors())
    group.learn_until(start + 20)
    single.learn_until(start + 20)  # 20 updates on the same transitions, batches drawn alike
    assert torch.equal(member.buffer.data[:start], single.buffer.data[:start])
    ours, theirs = member.model_tensors(), single.model_tensors()
    for k in ours:  # equal up to the products' rounding
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-4, atol=1e-5)
    group.learn_until(3000)
    single.learn_until(3000)
    for m in group.members:
        assert m.trainer.last_eval[0] > -600, m.trainer.last_eval
    assert single.trainer.last_eval[0] > -600


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- what a group accepts -----------------------------------------------------------------------

@pytest.mark.parametrize("text,seeds", [("0-3", [0, 1, 2, 3]), ("0,3,7", [0, 3, 7]), ("0-2, 10", [0, 1, 2, 10]),
                                        ("5", [5])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text,fragment", [("3-1", "'3-1'"), ("a", "'a'"), ("0-2,1", "twice"), ("-1", "'-1'"),
                                           ("", "''")])
def test_parse_seeds_refuses(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_seeds(text)


def test_check_groupable():
    check_groupable([TINY.replace(seed=0), TINY.replace(seed=1)])
    with pytest.raises(ConfigError, match="tau differs"):
        check_groupable([TINY.replace(seed=0), TINY.replace(seed=1, tau=0.1)])
    with pytest.raises(ConfigError, match="seeds must differ"):
        check_groupable([TINY, TINY])
    for change, name in ((dict(backward="autograd"), "autograd"), (dict(compile=True), "compile")):
        with pytest.raises(ConfigError, match=name):  # two or more stack their networks: the written-out update
            check_groupable([TINY.replace(seed=0, **change), TINY.replace(seed=1, **change)])
        check_groupable([TINY.replace(**change)])  # a group of one is a single run: any update
        assert not stackable(TINY.replace(**change))
    assert stackable(TINY)
    with pytest.raises(ConfigError, match="same step"):
        a = DDPG("Pendulum-v1", TINY, seed=0).learn(150)
        DDPGGroup([a, DDPG("Pendulum-v1", TINY, seed=1)])


# ---- checkpoints and resume ---------------------------------------------------------------------

def test_group_checkpoints_wait_for_a_step_where_every_member_is_between_episodes(tmp_path):
    """Hopper's episodes end at different steps for different seeds: every member saves at the same steps,
    each with all members between episodes or, after `patience` steps of waiting for that, mid-episode
    (both happen with these seeds)."""
    cfg = DDPGConfig(hidden=(8, 8), total_steps=3000, learning_starts=2000, buffer_size=2000, eval_interval=0,
                     checkpoint_interval=100, keep_checkpoints=100)
    group = DDPGGroup.create("Hopper-v5", cfg, seeds=[0, 1])
    patience = 300
    checkpointers = [Checkpointer(tmp_path / f"s{m.config.seed}", 100, 100, lambda t: group.at_episode_boundary,
                                  patience) for m in group.members]
    group.learn_until(1000, member_callbacks=[[cp] for cp in checkpointers])
    steps = [[s for s, _ in cp.saved] for cp in checkpointers]
    assert steps[0] and all(s == steps[0] for s in steps), steps
    kinds, due = [], 100
    for step in steps[0]:
        mid = [CheckpointFiles(tmp_path / f"s{k}" / "checkpoints" / str(step)).manifest["meta"]["training"]
               ["trainer"]["mid_episode"] for k in range(2)]
        if any(mid):
            assert step == due + patience and all(mid), (step, mid)  # waited its patience out
        kinds.append(any(mid))
        due = (step // 100 + 1) * 100
    assert set(kinds) == {False, True}, steps


def test_interrupted_group_resumes_to_the_uninterrupted_numbers(tmp_path):
    cfg = TINY.replace(total_steps=800)
    full = run_experiment("Pendulum-v1", cfg, [tmp_path / "full0", tmp_path / "full1"], seeds=[0, 1])
    dirs = [tmp_path / "a0", tmp_path / "a1"]
    run_experiment("Pendulum-v1", cfg.replace(total_steps=400), dirs, seeds=[0, 1])
    resumed = run_experiment("Pendulum-v1", cfg, dirs, seeds=[0, 1], resume=True)
    for f, r in zip(full, resumed):
        assert r.summary["resumed"] is True and r.summary["group_seeds"] == [0, 1]
        assert identical(f.agent.model_tensors(), r.agent.model_tensors())
        assert numbers(read_metrics(f.run_dir)) == numbers(read_metrics(r.run_dir))


CLI = ["Pendulum-v1", "--seeds", "0-1", "--steps", "1400", "--learning-starts", "100", "--batch-size", "32",
       "--hidden", "16,16", "--buffer-size", "5000", "--eval-interval", "400", "--eval-episodes", "2",
       "--checkpoint-interval", "200"]


def test_train_seeds_kill9_then_resume_equals_uninterrupted(tmp_path):
    full = run_subprocess("train", *CLI, "--out", tmp_path / "full")
    assert full.code == 0, full.err
    assert "2 seeds together: 0, 1" in full.out and "final evaluation: seed 1:" in full.out
    out = tmp_path / "killed"
    exe = Path(sys.executable).with_name("ddpgkit")
    proc = subprocess.Popen([str(exe), "train", *CLI, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runs = [out / "Pendulum-v1-s0", out / "Pendulum-v1-s1"]
    deadline = time.time() + 120
    while time.time() < deadline and not all(any((p / "manifest.json").exists() and int(p.name) >= 600
                                                 for p in list_checkpoints(r) if p.name.isdigit()) for r in runs):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = run_subprocess("train", *CLI, "--out", out, "--resume")
    assert r.code == 0, r.err
    assert "resuming:" in r.out
    for run in runs:
        ref = tmp_path / "full" / run.name
        ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (run, ref))
        assert identical(DDPG.load(run / ours["checkpoint"]).model_tensors(),
                         DDPG.load(ref / theirs["checkpoint"]).model_tensors())
        assert numbers(read_metrics(run)) == numbers(read_metrics(ref))
        assert ours["resumed"] is True and ours["group_seeds"] == [0, 1]
    e = run_subprocess("eval", runs[1], "--episodes", "2")  # an ordinary run directory
    assert e.code == 0 and "return:" in e.out


def test_train_seeds_bad_input_one_line(tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "train", "Pendulum-v1", "--seeds", "4-2"), "'4-2'")
    assert_one_line_error(run_cli(capsys, "train", "Pendulum-v1", "--seeds", "0-1", "--seed", "3"),
                          "--seed and --seeds")
    assert_one_line_error(run_cli(capsys, "train", "Pendulum-v1", "--seeds", "0-1", "--backward", "autograd",
                                  "--out", tmp_path), "autograd")
    assert_one_line_error(run_cli(capsys, "resume", tmp_path / "nope", tmp_path / "nope2"), "no such run directory")


def test_a_module_with_buffers_that_differ_is_refused():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    a.register_buffer("scale", torch.ones(2))
    b.register_buffer("scale", torch.zeros(2))
    with pytest.raises(ValueError, match="buffer scale"):
        stack_modules([a, b])


def test_resume_command_continues_a_group_from_its_run_directories(tmp_path, capsys):
    cfg = TINY.replace(total_steps=400)
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    run_experiment("Pendulum-v1", cfg, dirs, seeds=[0, 1])
    r = run_cli(capsys, "resume", *dirs, "--steps", "600")
    assert r.code == 0, r.err
    assert "2 seeds together: 0, 1" in r.out and "resuming:" in r.out
    full = run_experiment("Pendulum-v1", cfg.replace(total_steps=600), [tmp_path / "f0", tmp_path / "f1"], seeds=[0, 1])
    for d, f in zip(dirs, full):
        assert numbers(read_metrics(d)) == numbers(read_metrics(f.run_dir))
    assert_one_line_error(run_cli(capsys, "resume", dirs[0], tmp_path / "f0", "--steps", "800"), "seeds must differ")


@pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 needs a CPU with bfloat16 instructions")
def test_a_group_trains_in_bf16_close_to_fp32():
    """precision = bf16 runs the stacked hidden-to-hidden products in bfloat16: one update's weights stay
    within bf16's precision of the fp32 group's."""
    groups = {p: _group(precision=p, hidden=(32, 32)) for p in ("fp32", "bf16")}
    batch, _ = _random_batch(groups["fp32"])
    for g in groups.values():
        g.update(batch)
    a, b = (groups[p].members[1].model_tensors() for p in ("fp32", "bf16"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=2e-2, atol=2e-3)
