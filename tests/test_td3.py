"""The DDPG family's later fixes (issue 24): twin critics with the clipped double-Q target, target policy
smoothing and n-step returns — each against its equation written out, on every path of the update, in groups,
across a resume; and each off by default."""

import copy
import math
import shutil

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.agents.group import DDPGGroup
from ddpgkit.algo.ddpg import critic_loss, target_y
from ddpgkit.data.buffer import Batch, ReplayBuffer
from ddpgkit.errors import ConfigError
from ddpgkit.nn import Actor, Critic

from tests.markers import needs_bf16

TD3 = dict(n_critics=2, target_noise=0.2, target_noise_clip=0.5, policy_frequency=2)
SWITCHES = {"twin critics": dict(n_critics=2), "target smoothing": dict(target_noise=0.2, target_noise_clip=0.3),
            "n-step": dict(n_step=3), "all, the paper's critic": dict(**TD3, n_step=3, critic_action_layer=1)}
TINY = dict(hidden=(16, 16), batch_size=32, total_steps=500, learning_starts=100, eval_interval=0, eval_episodes=1,
            buffer_size=2000)
TIMING = ("steps_per_s", "wall_s")


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# ---- the equations, written out ----------------------------------------------------------------

def test_the_clipped_double_q_target_with_smoothing_is_the_papers_equation():
    """y = r + γ (1 − d) min_i Q'_i(s', clip(μ'(s') + clip(ε, −c, c), low, high)), one transition at a time."""
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 3.0])
    actor_t = Actor(3, low, high, hidden=(16, 16))
    q1_t, q2_t = Critic(3, 2, hidden=(16, 16)), Critic(3, 2, hidden=(16, 16))
    g = torch.Generator().manual_seed(1)
    B, gamma = 8, 0.9
    batch = Batch(obs=torch.randn(B, 3, generator=g), action=torch.rand(B, 2, generator=g),
                  reward=torch.randn(B, 1, generator=g), next_obs=torch.randn(B, 3, generator=g) * 3,
                  terminated=torch.tensor([[1.0], [0.0]] * 4), truncated=torch.tensor([[0.0], [1.0]] * 4))
    eps = torch.randn(B, 2, generator=g)  # large: the clip to the bounds is exercised
    with torch.no_grad():
        y = target_y(batch, actor_t, q1_t, gamma, q2_t, (eps, low, high))
        for i in range(B):
            s2 = batch.next_obs[i:i + 1]
            a2 = actor_t(s2)[0] + eps[i]
            a2 = torch.stack([min(max(a2[j], low[j]), high[j]) for j in range(2)])[None]  # clip, dimension by dimension
            q = min(q1_t(s2, a2)[0, 0], q2_t(s2, a2)[0, 0])  # the smaller of the two target critics
            expected = batch.reward[i, 0] + (0.0 if batch.terminated[i, 0] else gamma * q)
            torch.testing.assert_close(y[i, 0], expected)
        # one critic, no noise: DDPG's target exactly
        ddpg = batch.reward + gamma * (1 - batch.terminated) * q1_t(batch.next_obs, actor_t(batch.next_obs))
        assert torch.equal(target_y(batch, actor_t, q1_t, gamma), ddpg)


def test_twin_critics_both_learn_from_the_one_target():
    torch.manual_seed(0)
    actor_t, q1, q2 = Actor(3, [-1.0, -1.0], [1.0, 1.0], hidden=(8,)), Critic(3, 2, (8,)), Critic(3, 2, (8,))
    q1_t, q2_t = copy.deepcopy(q1), copy.deepcopy(q2)
    g = torch.Generator().manual_seed(2)
    batch = Batch(torch.randn(5, 3, generator=g), torch.rand(5, 2, generator=g), torch.randn(5, 1, generator=g),
                  torch.randn(5, 3, generator=g), torch.zeros(5, 1), torch.zeros(5, 1))
    loss, q, y = critic_loss(q1, q1_t, actor_t, batch, 0.99, q2, q2_t)
    with torch.no_grad():
        a2 = actor_t(batch.next_obs)
        target = batch.reward + 0.99 * torch.minimum(q1_t(batch.next_obs, a2), q2_t(batch.next_obs, a2))
    want = ((q1(batch.obs, batch.action) - target) ** 2).mean() + ((q2(batch.obs, batch.action) - target) ** 2).mean()
    torch.testing.assert_close(loss, want)
    assert q.shape == y.shape == (10, 1)  # both critics' rows, for the health signals


def _written_out_n_step(transitions, start, n, gamma):
    """The n-step sum, transition by transition: (R, s_{t+m}, d, γ^m)."""
    ret, m = 0.0, 0
    for k in range(n):
        obs, action, r, next_obs, term, trunc = transitions[start + k]
        ret += gamma ** k * r
        m = k + 1
        if term or trunc or start + k == len(transitions) - 1:  # an episode's end, or the newest transition
            break
    last = transitions[start + m - 1]
    return ret, last[3], last[4], gamma ** m


@pytest.mark.parametrize("added", [11, 6])
def test_n_step_transitions_stop_at_episode_ends_and_the_newest_row_and_bootstrap_through_truncation(added):
    """Termination inside the window (no bootstrap), truncation inside it (bootstrap from the truncated state),
    the newest transition, a buffer that has wrapped (added = 11 into 8 rows): every stored start, against the
    sum written out."""
    n, gamma, capacity = 3, 0.9, 8
    buf = ReplayBuffer(capacity, 1, 1, n_step=n, gamma=gamma)
    ends = {2: "terminated", 4: "truncated", 8: "terminated"}  # transition index -> how its episode ended
    transitions = []
    for t in range(added):
        tr = ([float(t)], [0.1 * t], float(t + 1), [float(t) + 0.5], ends.get(t) == "terminated",
              ends.get(t) == "truncated")
        transitions.append(tr)
        buf.add(np.array(tr[0]), np.array(tr[1]), tr[2], np.array(tr[3]), tr[4], tr[5])
    kept = transitions[-capacity:]  # what the buffer still holds, oldest first
    first = len(transitions) - len(kept)
    rows = buf._n_step_rows(torch.tensor([(first + i) % capacity for i in range(len(kept))]))
    batch = buf.split(rows)
    for i in range(len(kept)):
        ret, next_obs, term, discount = _written_out_n_step(kept, i, n, gamma)
        assert batch.obs[i, 0] == kept[i][0][0] and batch.action[i, 0] == np.float32(kept[i][1][0])
        torch.testing.assert_close(batch.reward[i, 0], torch.tensor(ret, dtype=torch.float32))
        assert batch.next_obs[i, 0] == next_obs[0] and batch.terminated[i, 0] == float(term)
        torch.testing.assert_close(batch.discount[i, 0], torch.tensor(discount, dtype=torch.float32))
    # the TD target of such a batch: y = R + γ^m (1 − d) Q'(s_{t+m}, ·)
    y = target_y(batch, lambda s: s, lambda s, a: 10 * s, gamma)
    expected = batch.reward + batch.discount * (1 - batch.terminated) * 10 * batch.next_obs
    assert torch.equal(y, expected)


def test_n_step_1_samples_exactly_the_one_step_rows():
    buf = ReplayBuffer(50, 2, 1, seed=3, n_step=1)
    for t in range(30):
        buf.add(np.full(2, t), np.zeros(1), t, np.full(2, t + 1), t % 7 == 6, False)
    batch = buf.sample(16)
    idx = torch.randint(0, 30, (16,), generator=torch.Generator().manual_seed(3))  # the draw, written out
    assert batch.discount is None and torch.equal(torch.cat(batch[:6], dim=1), buf.data[idx])


def test_the_smoothing_noise_is_clipped_gaussian_noise_in_units_of_the_action_scale():
    from ddpgkit.algo.ddpg import target_policy_noise
    from ddpgkit.config.seeds import TARGET_NOISE_SEED_OFFSET

    z = torch.tensor([[-5.0, 0.1], [2.0, -0.4]])
    scale = torch.tensor([2.0, 0.5])
    expected = torch.tensor([[-0.5 * 2.0, 0.02 * 0.5], [0.4 * 2.0, -0.08 * 0.5]])  # clip(0.2 z, ±0.5) · scale
    torch.testing.assert_close(target_policy_noise(z, 0.2, 0.5, scale), expected)
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(8,), batch_size=16, target_noise=0.3, target_noise_clip=0.4,
                                           seed=7))
    rows = torch.zeros(16, agent.buffer.width)
    noise, low, high = agent.learner._smoothing(agent.buffer.split(rows))
    z = torch.randn(16, 1, generator=torch.Generator().manual_seed(7 + TARGET_NOISE_SEED_OFFSET))
    torch.testing.assert_close(noise, torch.clamp(0.3 * z, -0.4, 0.4) * 2.0)  # Pendulum's torque: scale 2
    assert low.tolist() == [-2.0] and high.tolist() == [2.0]
    assert noise.abs().max() <= 0.8 and noise.abs().max() == 0.8  # some draws clipped at 0.4 · 2


# ---- every path of the update --------------------------------------------------------------------

@pytest.mark.parametrize("switches", list(SWITCHES.values()), ids=list(SWITCHES))
def test_handwritten_and_autograd_updates_train_identically_with_each_switch(switches):
    runs = []
    for backward in ("autograd", "handwritten"):
        cfg = DDPGConfig(**TINY, backward=backward, **switches)
        runs.append(DDPG("Pendulum-v1", cfg, seed=4).learn())
    a, b = (r.model_tensors() for r in runs)
    assert identical(a, b)  # every network, the second critic and its target too, bit for bit
    assert numbers(runs[0].trainer.history) == numbers(runs[1].trainer.history)
    ddpg = DDPG("Pendulum-v1", DDPGConfig(**TINY), seed=4).learn()
    shared = [k for k in a if k in ddpg.model_tensors()]
    assert not all(torch.equal(a[k], ddpg.model_tensors()[k]) for k in shared)  # the switch changed the run


def test_the_second_critic_starts_where_ddpg_starts_and_is_saved():
    ddpg, td3 = DDPG("Pendulum-v1", DDPGConfig(**TINY)), DDPG("Pendulum-v1", DDPGConfig(**TINY, **TD3))
    a, b = ddpg.model_tensors(), td3.model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the actor and the first critic: DDPG's initial weights
    assert {k.split(".")[0] for k in b} - {k.split(".")[0] for k in a} == {"critic2", "critic2_target"}
    assert not torch.equal(b["critic.net.linear0.weight"], b["critic2.net.linear0.weight"])


@pytest.mark.parametrize("policy_frequency", [1, 2])
def test_a_group_update_with_the_switches_equals_each_agent_updating_alone(policy_frequency):
    """The stacked update with twin critics and smoothing noise: each member draws its noise from its own
    generator, as it does alone, and ends where it ends alone (to float precision: bmm against mm)."""
    cfg = DDPGConfig(**{**TINY, **TD3, "policy_frequency": policy_frequency})
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=range(3))
    alone = [DDPG("Pendulum-v1", cfg, seed=s) for s in range(3)]
    width = group.members[0].buffer.width
    for step in range(4):
        rows = torch.randn(3, 32, width, generator=torch.Generator().manual_seed(step))
        rows[..., -2:] = (rows[..., -2:] > 1.0).float()
        losses = group.update(group.members[0].buffer.split(rows))
        for k, a in enumerate(alone):
            for ours, ref in zip(losses, a.update(a.buffer.split(rows[k]))):
                torch.testing.assert_close(ours[k], ref, rtol=1e-4, atol=1e-5)
    for k, a in enumerate(alone):
        ours, ref = group.members[k].model_tensors(), a.model_tensors()
        assert ours.keys() == ref.keys()
        for name in ref:
            torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-5)
        assert torch.equal(group.members[k].learner.target_noise_generator.get_state(),
                           a.learner.target_noise_generator.get_state())


def member_learns_as_alone(env, cfg, seeds, member, steps):
    """Group member ``member`` of ``seeds`` trained ``steps`` steps stores the warm-up's transitions its single run
    stores, bit for bit, and ends with its weights up to the products' rounding (the batches drawn alike)."""
    group = DDPGGroup.create(env, cfg, seeds=seeds)
    single = DDPG(env, cfg, seed=seeds[member])
    group.learn_until(steps)
    single.learn_until(steps)
    start = cfg.learning_starts  # after it, the actions follow weights equal up to rounding
    assert torch.equal(group.members[member].buffer.data[:start], single.buffer.data[:start])
    ours, theirs = group.members[member].model_tensors(), single.model_tensors()
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-4, atol=1e-5)


def test_a_group_member_with_n_step_returns_samples_what_its_single_run_samples():
    member_learns_as_alone("Pendulum-v1", DDPGConfig(**{**TINY, **TD3, "n_step": 3}), [0, 1], 0, 130)  # 30 updates


@needs_bf16
def test_bf16_training_with_the_switches_is_reproducible_and_close_to_fp32():
    runs = {}
    for precision in ("fp32", "bf16", "bf16"):
        cfg = DDPGConfig(**{**TINY, "total_steps": 300}, **TD3, n_step=3, precision=precision)
        runs.setdefault(precision, []).append(DDPG("Pendulum-v1", cfg, seed=5).learn().model_tensors())
    a, b = runs["bf16"]
    assert identical(a, b)
    fp32 = runs["fp32"][0]
    assert not identical(a, fp32)  # bf16 did run
    for k in fp32:
        assert (a[k] - fp32[k]).norm() <= 0.1 * fp32[k].norm() + 1e-3, k


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_the_compiled_update_with_the_switches_matches_the_eager_one():
    agents = [DDPG("Pendulum-v1", DDPGConfig(hidden=(32, 32), batch_size=64, compile=c, **TD3), seed=2)
              for c in (False, True)]
    rows = torch.randn(64, agents[0].buffer.width + 1, generator=torch.Generator().manual_seed(0))
    rows[:, -3:-1] = (rows[:, -3:-1] > 1.0).float()  # terminated, truncated
    rows[:, -1] = 0.99 ** torch.randint(1, 4, (64,), generator=torch.Generator().manual_seed(1))  # γ^m, n-step
    batch = agents[0].buffer.split(rows)
    for _ in range(2):  # the second update takes the actor step (policy_frequency 2)
        outs = [agent.update(batch) for agent in agents]
        for a, b in zip(*outs):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ta, tb = agents[0].model_tensors(), agents[1].model_tensors()
    assert all(torch.allclose(ta[k], tb[k], rtol=1e-5, atol=1e-6) for k in ta)


def test_the_health_signals_cover_both_critics():
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(16, 16), batch_size=32, health_interval=1, n_critics=2))
    rows = torch.randn(32, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    rows[:, -2:] = 0.0
    batch = agent.buffer.split(rows)
    with torch.no_grad():
        q1, q2 = agent.critic(batch.obs, batch.action), agent.critic2(batch.obs, batch.action)
    agent.update(batch)
    from ddpgkit.algo.health import health_values

    values = health_values(agent.learner.health)
    assert values["q_max"] == pytest.approx(float(torch.maximum(q1, q2).max()), rel=1e-6)
    assert values["q_min"] == pytest.approx(float(torch.minimum(q1, q2).min()), rel=1e-6)
    grads = [p.grad for p in agent.learner._critic_params]  # both critics' parameters, the second's after
    assert len(grads) == 2 * len(list(agent.critic.parameters()))
    norm = math.sqrt(sum(float(g.square().sum()) for g in grads))
    assert values["critic_grad_norm"] == pytest.approx(norm, rel=1e-5)


# ---- exact resume and the config ------------------------------------------------------------------

def test_a_td3_run_with_n_step_returns_killed_mid_episode_resumes_bit_identically(tmp_path):
    from tests.test_resume import SMALL, crash_and_resume

    cfg = DDPGConfig(**SMALL, **TD3, n_step=3)
    full, resumed = crash_and_resume(tmp_path, cfg)  # crashed at step 750, resumed from step 600
    assert torch.equal(resumed.learner.target_noise_generator.get_state(),
                       _generator_at(cfg, 600))  # the smoothing noise's generator came back
    resumed.learn()
    assert identical(full.model_tensors(), resumed.model_tensors())
    assert numbers(full.trainer.history) == numbers(resumed.trainer.history)


def _generator_at(cfg, step):
    agent = DDPG("Pendulum-v1", cfg, seed=2)
    agent.learn_until(step)
    return agent.learner.target_noise_generator.get_state()


def test_a_group_with_the_switches_resumes_to_the_uninterrupted_numbers(tmp_path):
    from ddpgkit import resume_experiment, run_experiment

    cfg = DDPGConfig(**{**TINY, "total_steps": 400, "eval_interval": 200}, **TD3, n_step=3, checkpoint_interval=200)
    full = run_experiment("Pendulum-v1", cfg, [tmp_path / f"full{s}" for s in (3, 4)], seeds=[3, 4])
    parts = [tmp_path / f"part{s}" for s in (3, 4)]
    run_experiment("Pendulum-v1", cfg.replace(total_steps=200), parts, seeds=[3, 4])
    resumed = resume_experiment(parts, total_steps=400).run()
    for a, b in zip(full, resumed, strict=True):
        assert identical(a.agent.model_tensors(), b.agent.model_tensors())
        assert numbers(a.agent.trainer.history) == numbers(b.agent.trainer.history)


@pytest.mark.parametrize("key,value,fragment", [("n_critics", 3, "n_critics must be 1 or 2"),
                                                ("target_noise", -0.1, "target_noise must be >= 0"),
                                                ("target_noise_clip", 0.0, "target_noise_clip must be > 0"),
                                                ("n_step", 0, "n_step must be >= 1")])
def test_the_switches_are_validated(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        DDPGConfig(**{key: value})


def test_a_config_says_what_it_trains():
    assert DDPGConfig().algorithm() == "DDPG"
    assert DDPGConfig.preset("fujimoto2018-td3").algorithm() == "TD3"
    assert DDPGConfig.preset("fujimoto2018-td3", n_step=3).algorithm() == "TD3 (3-step returns)"
    assert DDPGConfig(n_critics=2).algorithm() == "DDPG (two critics)"  # without smoothing and delay: not TD3
    assert DDPGConfig(target_noise=0.2, obs_norm=True).algorithm() == "DDPG (target smoothing, normalized observations)"


def test_the_switches_are_off_by_default():
    cfg = DDPGConfig()
    assert (cfg.n_critics, cfg.target_noise, cfg.n_step) == (1, 0.0, 1)
    agent = DDPG("Pendulum-v1", cfg)
    assert agent.critic2 is None and agent.learner.target_noise_generator is None
    assert agent.buffer.sample_width == agent.buffer.width


# ---- by name, from the command line, in a sweep, and the picture ----------------------------------

def test_the_td3_presets_hold_their_sources_values():
    from ddpgkit.config.presets import PRESET_SOURCES

    paper = DDPGConfig.preset("fujimoto2018-td3")
    assert (paper.hidden, paper.actor_lr, paper.critic_lr, paper.batch_size, paper.tau, paper.noise_scale) == \
        ((400, 300), 1e-3, 1e-3, 100, 5e-3, 0.1)
    assert (paper.n_critics, paper.target_noise, paper.target_noise_clip, paper.policy_frequency) == (2, 0.2, 0.5, 2)
    ddpg = DDPGConfig.preset("fujimoto2018")  # the paper's own DDPG: the same but for the three fixes
    differ = {k for k, v in paper.to_dict().items() if ddpg.to_dict()[k] != v}
    assert differ == {"n_critics", "target_noise", "policy_frequency"}
    sb3 = DDPGConfig.preset("sb3-td3")
    assert (sb3.hidden, sb3.batch_size, sb3.learning_starts, sb3.policy_frequency, sb3.target_noise) == \
        ((400, 300), 256, 100, 2, 0.2)
    clean = DDPGConfig.preset("cleanrl-td3")
    assert (clean.hidden, clean.actor_lr, clean.learning_starts, clean.n_critics, clean.target_noise_clip) == \
        ((256, 256), 3e-4, 25_000, 2, 0.5)
    assert all(name in PRESET_SOURCES for name in ("fujimoto2018-td3", "sb3-td3", "cleanrl-td3"))


def test_presets_shows_what_td3_changes_beside_the_ddpgs(capsys):
    from tests.clihelp import run_cli

    r = run_cli(capsys, "presets")
    assert r.code == 0, r.err
    header = r.out.splitlines()[0]
    assert "fujimoto2018-td3" in header and "sb3-td3" in header and "cleanrl-td3" in header
    rows = {line.split()[1]: line for line in r.out.splitlines() if line.startswith("*")}
    assert {"n_critics", "target_noise", "policy_frequency"} <= set(rows)
    assert rows["n_critics"].split()[2:] == ["1"] * 5 + ["2"] * 3 + ["1"]  # five DDPGs, three TD3s, DDPG + HER


def test_train_any_preset_with_the_switches_in_a_group_and_a_sweep_grid(tmp_path, capsys):
    from ddpgkit.experiments.sweep import SweepSpec

    from tests.clihelp import run_cli

    r = run_cli(capsys, "train", "Pendulum-v1", "--preset", "lillicrap2015", "--n-critics", "2", "--target-noise",
                "0.2", "--n-step", "3", "--seeds", "0-1", "--steps", "300", "--hidden", "16,16", "--buffer-size",
                "1000", "--eval-episodes", "1", "--eval-interval", "0", "--out", tmp_path / "g")
    assert r.code == 0, r.err
    assert "training: DDPG (two critics, target smoothing, 3-step returns) on Pendulum-v1" in r.out  # no delay
    for s in (0, 1):
        run = tmp_path / "g" / f"Pendulum-v1-s{s}"
        saved = DDPGConfig.load(run / "config.toml")
        assert (saved.n_critics, saved.target_noise, saved.n_step, saved.critic_action_layer) == (2, 0.2, 3, 1)
        latest = DDPG.load(run / "checkpoints" / "300")
        assert latest.critic2 is not None and latest.learner.target_noise_generator is not None
    spec = SweepSpec.from_dict({"envs": ["Pendulum-v1"], "seeds": [0], "preset": "pendulum",
                                "grid": {"n_critics": [1, 2], "target_noise": [0.0, 0.2], "n_step": [1, 3]}})
    trials = spec.trials(tmp_path / "s")
    assert len(trials) == 8
    assert {(t.config.n_critics, t.config.target_noise, t.config.n_step) for t in trials} == \
        {(c, n, k) for c in (1, 2) for n in (0.0, 0.2) for k in (1, 3)}


def test_plot_and_inspect_draw_ddpgs_and_td3s_critics_side_by_side(tmp_path, capsys):
    from PIL import Image

    from tests.clihelp import assert_one_line_error, run_cli

    flags = ["--steps", "600", "--learning-starts", "100", "--hidden", "16,16", "--batch-size", "32",
             "--buffer-size", "1000", "--eval-interval", "200", "--eval-episodes", "1", "--checkpoint-interval", "200"]
    ddpg, td3 = tmp_path / "ddpg", tmp_path / "td3"
    assert run_cli(capsys, "train", "Pendulum-v1", *flags, "--out", ddpg).code == 0
    assert run_cli(capsys, "train", "Pendulum-v1", *flags, "--n-critics", "2", "--target-noise", "0.2",
                   "--policy-frequency", "2", "--out", td3).code == 0
    r = run_cli(capsys, "plot", ddpg, td3, "--out", tmp_path / "curves.png")
    assert r.code == 0, r.err
    both = Image.open(tmp_path / "overestimation.png").size
    r = run_cli(capsys, "inspect", ddpg, td3, "--out", tmp_path / "inspect")
    assert r.code == 0, r.err
    assert (tmp_path / "inspect" / "ddpg" / "value_maps.png").is_file()
    assert (tmp_path / "inspect" / "td3" / "value_maps.png").is_file()
    assert Image.open(tmp_path / "inspect" / "overestimation.png").size == both
    one = Image.open(tmp_path / "inspect" / "ddpg" / "overestimation.png").size
    assert both[0] > 1.4 * one[0] and both[1] == one[1]  # two panels side by side, one value scale
    assert_one_line_error(run_cli(capsys, "inspect", ddpg, ddpg), "a run is given twice")
    # runs of one name in two folders (a group's, a sweep's) are told apart by their folders
    from ddpgkit.analysis.inspection import run_labels

    assert run_labels([tmp_path / "a" / "Pendulum-v1-s0", tmp_path / "b" / "Pendulum-v1-s0"]) == \
        ["a/Pendulum-v1-s0", "b/Pendulum-v1-s0"]
    # a run whose evaluations did not measure its critic: one line, and nothing drawn
    unmeasured = tmp_path / "unmeasured"  # as a run from before the critic was measured
    shutil.copytree(ddpg, unmeasured)
    metrics = (unmeasured / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("eval_q_mean")
    rows = [line.split(",") for line in metrics]
    for row in rows[1:]:
        row[column] = ""
    (unmeasured / "metrics.csv").write_text("\n".join(",".join(row) for row in rows) + "\n")
    r = run_cli(capsys, "inspect", ddpg, unmeasured, "--out", tmp_path / "refused")
    assert_one_line_error(r, "did not measure the critic")
    assert not (tmp_path / "refused").exists()


def test_the_papers_td3_killed_with_sigkill_resumes_bit_identically(tmp_path):
    """`ddpgkit train ... --preset fujimoto2018-td3` (small networks, a short run, n-step returns on top),
    killed with SIGKILL after a checkpoint, then `--resume`: the weights, metrics and final evaluation of the
    uninterrupted run."""
    import json
    import signal
    import time

    from ddpgkit.storage.rundir import read_metrics

    from tests.clihelp import run_subprocess
    from tests.test_resume import _popen, _wait_for_checkpoint

    args = ["Pendulum-v1", "--preset", "fujimoto2018-td3", "--hidden", "32,32", "--steps", "1400",
            "--learning-starts", "100", "--buffer-size", "5000", "--checkpoint-interval", "200", "--eval-interval",
            "400", "--eval-episodes", "2", "--n-step", "3", "--seed", "3"]
    full, run = tmp_path / "full", tmp_path / "run"
    assert run_subprocess("train", *args, "--out", full).code == 0
    proc = _popen("train", *args, "--out", str(run))
    _wait_for_checkpoint(run, proc, 600)
    time.sleep(0.05)  # somewhere after it: mid-episode, perhaps mid-save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    r = run_subprocess("train", *args, "--out", run, "--resume")
    assert r.code == 0, r.err
    summary = {d: json.loads((d / "summary.json").read_text()) for d in (full, run)}
    ours, ref = (DDPG.load(d / summary[d]["checkpoint"]).model_tensors() for d in (run, full))
    assert identical(ours, ref) and "critic2.net.linear0.weight" in ours
    assert numbers(read_metrics(run)) == numbers(read_metrics(full))
    assert summary[run]["final_eval_mean"] == summary[full]["final_eval_mean"]


def test_a_run_resumed_mid_episode_does_not_let_an_n_step_window_cross_into_the_next_episode(tmp_path):
    """A checkpoint taken mid-episode resumes with a fresh episode: the dropped episode's last stored transition
    is marked as cut, so a window stops there and bootstraps from its next state, as at a time limit."""
    n, gamma = 3, 0.9
    buf = ReplayBuffer(10, 1, 1, n_step=n, gamma=gamma)
    for t in range(4):  # an episode interrupted after 4 steps
        buf.add(np.array([t]), np.zeros(1), 1.0, np.array([t + 0.5]), False, False)
    buf.cut_episode()
    buf.add(np.array([100.0]), np.zeros(1), 5.0, np.array([101.0]), False, False)  # the next episode's first
    batch = buf.split(buf._n_step_rows(torch.tensor([2, 3])))
    assert batch.reward[:, 0].tolist() == pytest.approx([1 + gamma, 1.0])  # not + γ^k · 5
    assert batch.next_obs[:, 0].tolist() == [3.5, 3.5] and batch.terminated.sum() == 0
    # through a checkpoint: a run saved at step 150 of a 200-step Pendulum episode
    cfg = DDPGConfig(**{**TINY, "total_steps": 150}, n_step=3)
    agent = DDPG("Pendulum-v1", cfg).learn()
    agent.save(tmp_path / "c", training_state=True)
    loaded = DDPG.load(tmp_path / "c")
    truncated = loaded.buffer._cols["truncated"][0]
    assert loaded.buffer.data[149, truncated] == 1.0 and agent.buffer.data[149, truncated] == 0.0
    one_step = DDPG("Pendulum-v1", DDPGConfig(**{**TINY, "total_steps": 150})).learn()
    one_step.save(tmp_path / "d", training_state=True)
    assert torch.equal(DDPG.load(tmp_path / "d").buffer.data, one_step.buffer.data)  # DDPG's buffer as it was


def test_the_cut_mark_survives_the_next_checkpoint_whose_chunk_files_are_shared(tmp_path):
    """The mark changes a row already saved, in a chunk whose write count stays the same: the next save
    beside it must write that chunk again, not refer to the file without the mark."""
    cfg = DDPGConfig(**{**TINY, "total_steps": 150}, n_step=3, keep_checkpoints=1)  # one generation of files
    agent = DDPG("Pendulum-v1", cfg)
    agent.buffer.chunk_rows = 50  # rows 100-149 are chunk 2; the transitions after the resume go to chunk 3
    agent.learn()
    ckpts = tmp_path / "checkpoints"
    agent.save(ckpts / "150", training_state=True, share_buffer=True)
    resumed = DDPG.load(ckpts / "150")  # mid-episode: row 149 marked as cut
    truncated = resumed.buffer._cols["truncated"][0]
    assert resumed.buffer.data[149, truncated] == 1.0
    resumed.learn(10)
    resumed.save(ckpts / "160", training_state=True, share_buffer=True)
    again = DDPG.load(ckpts / "160")  # at step 160, mid-episode too: row 159 marked now
    assert again.buffer.data[149, truncated] == 1.0 and again.buffer.data[159, truncated] == 1.0
    assert torch.equal(again.buffer.data[:159], resumed.buffer.data[:159])


def test_the_sb3_td3_preset_holds_the_installed_stable_baselines3s_td3_defaults():
    sb3 = pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is a benchmark-only dependency")
    import inspect

    defaults = {k: v.default for k, v in inspect.signature(sb3.TD3.__init__).parameters.items()}
    preset = DDPGConfig.preset("sb3-td3")
    assert preset.actor_lr == preset.critic_lr == defaults["learning_rate"]
    assert (preset.buffer_size, preset.learning_starts, preset.batch_size, preset.tau, preset.gamma) == \
        (defaults["buffer_size"], defaults["learning_starts"], defaults["batch_size"], defaults["tau"],
         defaults["gamma"])
    assert (preset.policy_frequency, preset.target_noise, preset.target_noise_clip) == \
        (defaults["policy_delay"], defaults["target_policy_noise"], defaults["target_noise_clip"])
    assert "400, 300" in inspect.getsource(sb3.td3.policies.TD3Policy.__init__) and preset.hidden == (400, 300)
