"""Hindsight Experience Replay and the goal tasks (issue 25, parts 3 and 4): the relabelling against its
equations written out, episodes in a buffer that wraps and is cut, exact resume, groups, the HER paper's
additions to DDPG (action penalty, random actions), success rates in every file and command — and HER learning
the bit-flipping and point-reach tasks where DDPG without it does not."""

import json

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.algo.ddpg import actor_loss, autograd_actor_gradients
from ddpgkit.algo.gradients import actor_gradients, critic_nets
from ddpgkit.config.presets import PRESETS
from ddpgkit.data.buffer import ReplayBuffer
from ddpgkit.data.her import EpisodeIndex, GoalColumns, Relabeller, batch_call, goal_transition, relabel_probability
from ddpgkit.envs.goals import BitFlipEnv, PointReachEnv
from ddpgkit.errors import ConfigError, EnvError
from ddpgkit.nn import Actor, Critic

from tests.clihelp import assert_one_line_error, run_cli

TIMING = ("steps_per_s", "wall_s")
# the settings the learning tests use (a small DDPG + HER; γ = 1 − 1/T for the bit-flipping task's T = 10)
GOAL = dict(hidden=(64, 64), her="future", learning_starts=200, eval_episodes=20, batch_size=128,
            buffer_size=100_000, tau=0.05, noise_scale=0.2, random_action_prob=0.3)


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- the relabelling, written out ----------------------------------------------------------------

def test_the_goal_transition_of_each_strategy_is_its_formula():
    t, start, end = np.array([5, 5, 9, 3]), np.array([2, 2, 2, 3]), np.array([9, 9, 9, 3])
    u = np.array([0.0, 0.999, 0.5, 0.7])
    # future: t + floor(u (end − t + 1)) — 5 + 0, 5 + floor(0.999·5) = 9, 9 + 0, 3
    assert goal_transition("future", t, start, end, u).tolist() == [5, 9, 9, 3]
    assert goal_transition("final", t, start, end, u).tolist() == [9, 9, 9, 3]
    # episode: start + floor(u (end − start + 1)) — 2, 2 + 7 = 9, 2 + floor(0.5·8) = 6, 3
    assert goal_transition("episode", t, start, end, u).tolist() == [2, 9, 6, 3]
    assert relabel_probability(4) == 0.8 and relabel_probability(1) == 0.5


def _episodes_buffer(strategy, capacity=64, lengths=(7, 12, 5, 20, 9, 30), k=4, last_truncated=True, seed=0):
    """A buffer whose rows say which transition they are: observation = [t], achieved_goal(s_t) = [t] and
    achieved_goal(s'_t) = [t + 1], desired_goal = [−1] (t: the absolute index), with episodes of ``lengths``
    (each ends truncated, the last one still running unless ``last_truncated``); the reward is 0 where the
    achieved goal equals the desired one, else −1."""
    def reward(achieved, desired):
        return np.where(np.all(achieved == desired, axis=-1), 0.0, -1.0)

    # flat observation: [observation | achieved_goal | desired_goal]
    relabeller = Relabeller(strategy, k, GoalColumns(achieved=(1, 2), desired=(2, 3)), reward)
    buf = ReplayBuffer(capacity, 3, 1, seed=seed, relabeller=relabeller)
    ends, t = [], 0
    for i, n in enumerate(lengths):
        for j in range(n):
            last = j == n - 1 and (last_truncated or i < len(lengths) - 1)
            buf.add([t, t, -1], [0.0], -1.0, [t, t + 1, -1], False, last)
            t += 1
        ends.append(t - 1)
    return buf, ends


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
@pytest.mark.parametrize("last_truncated", [True, False])
def test_relabelled_goals_come_from_the_transitions_own_episode_by_its_strategy(strategy, last_truncated):
    buf, ends = _episodes_buffer(strategy, last_truncated=last_truncated)
    assert buf.added == 83 and len(buf) == 64  # the buffer wrapped inside the fourth episode
    oldest = buf.added - len(buf)
    batch = buf.sample(4000)
    t = batch.obs[:, 0].numpy().astype(int)
    goal = batch.obs[:, 2].numpy()
    assert np.array_equal(goal, batch.next_obs[:, 2].numpy())  # s and s' carry the same goal
    relabelled = goal != -1
    assert abs(relabelled.mean() - 0.8) < 0.03  # k = 4: a share k / (k + 1) of the batch
    j = goal[relabelled].astype(int) - 1  # achieved_goal(s'_j) = j + 1
    tr = t[relabelled]
    end = np.array([next(e for e in ends if e >= x) for x in tr])  # the episode's last transition
    if not last_truncated:  # the running episode ends, for now, at the newest transition
        end = np.minimum(end, buf.added - 1)
    start = np.array([max([e + 1 for e in ends if e < x] + [0]) for x in tr])
    if strategy == "future":
        assert np.all((tr <= j) & (j <= end))
        assert np.any(j == tr) and np.any(j == end)
    elif strategy == "final":
        assert np.array_equal(j, end)
    else:  # the whole episode as far as it is still stored
        assert np.all((np.maximum(start, oldest) <= j) & (j <= end))
        assert np.any(j < tr)
    # the reward recomputed for the new goal: 0 exactly where s'_t achieved it (j = t)
    r = batch.reward[:, 0].numpy()
    assert np.array_equal(r[relabelled], np.where(j == tr, 0.0, -1.0))
    assert np.all(r[~relabelled] == -1.0)  # the real ones as stored


def test_the_episode_index_kept_while_adding_equals_the_one_rebuilt_from_the_end_flags():
    rng = np.random.default_rng(0)
    for capacity in (16, 50, 200):
        index = EpisodeIndex(capacity)
        flags, added = [], 0
        for _ in range(300):
            ended = bool(rng.random() < 0.1)
            index.added(added, ended)
            flags.append(ended)
            added += 1
            size = min(added, capacity)
            rebuilt = EpisodeIndex(capacity)
            rebuilt.rebuild(np.array(flags[added - size:]), added)
            probe = np.arange(added - size, added)
            for a, b in zip(index.bounds(probe, added, size), rebuilt.bounds(probe, added, size)):
                assert np.array_equal(a, b)


def test_a_loaded_buffer_samples_the_relabelled_batches_the_saved_one_samples():
    buf, _ = _episodes_buffer("future", last_truncated=False)
    tensors, meta = buf.state_dict()
    copy, _ = _episodes_buffer("future", lengths=(3,), seed=9)  # other rows, another generator: all replaced
    copy.load_state_dict(tensors, meta)
    for _ in range(3):
        a, b = buf.sample(256), copy.sample(256)
        assert all(torch.equal(x, y) for x, y in zip(a[:6], b[:6]))


def test_a_cut_episode_ends_where_it_was_cut():
    buf, ends = _episodes_buffer("future", last_truncated=False)
    buf.cut_episode()  # a run resumed mid-episode drops the rest of it
    buf.add([83, 83, -1], [0.0], -1.0, [83, 84, -1], False, False)  # the next episode's first transition
    batch = buf.sample(4000)
    t, goal = batch.obs[:, 0].numpy().astype(int), batch.obs[:, 2].numpy()
    before = (goal != -1) & (t <= 82)
    assert before.any() and np.all(goal[before] - 1 <= 82)  # no goal from past the cut


def test_a_goal_function_that_is_not_vectorized_is_called_row_by_row():
    def one_norm_for_the_batch(a, d):  # Gymnasium-Robotics' maze compute_terminated: one value for any batch
        return bool(np.linalg.norm(a - d) <= 0.45)

    achieved, desired = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.array([[0.1, 0.0], [0.0, 0.0], [2.0, 2.2]])
    assert batch_call(one_norm_for_the_batch, achieved, desired).tolist() == [1.0, 0.0, 1.0]
    calls = []

    def vectorized(a, d):
        calls.append(len(a))
        return np.where(np.linalg.norm(a - d, axis=-1) > 0.45, -1.0, 0.0)

    assert batch_call(vectorized, achieved, desired).tolist() == [0.0, -1.0, 0.0] and calls == [3]  # one call


# ---- the goal interface and the refusals ---------------------------------------------------------

def test_her_needs_a_goal_env_and_one_step_transitions():
    with pytest.raises(EnvError, match="HER needs a goal env.*observation, achieved_goal, desired_goal"):
        DDPG("Pendulum-v1", DDPGConfig(her="future"))
    with pytest.raises(EnvError, match="HER needs a goal env"):
        DDPG("ddpgkit/DictMirror-v0", DDPGConfig(her="final"))
    with pytest.raises(ConfigError, match="her is not built with n_step > 1"):
        DDPGConfig(her="future", n_step=3)
    with pytest.raises(ConfigError, match="her must be one of none, future, final, episode"):
        DDPGConfig(her="futur")
    with pytest.raises(ConfigError, match="her_k must be >= 1"):
        DDPGConfig(her_k=0)


def test_the_cli_refuses_her_on_an_env_without_goals_in_one_line(tmp_path, capsys):
    r = run_cli(capsys, "train", "Pendulum-v1", "--her", "future", "--out", tmp_path / "r")
    assert_one_line_error(r, "HER needs a goal env")
    r = run_cli(capsys, "train", "ddpgkit/BitFlip-v0", "--her", "future", "--n-step", "3", "--out", tmp_path / "s")
    assert_one_line_error(r, "not built with n_step > 1")


def test_the_goal_tasks_reward_and_succeed_as_their_formulas_say():
    env = BitFlipEnv(n_bits=4)
    obs, _ = env.reset(seed=3)
    flip = np.where(obs["achieved_goal"] != obs["desired_goal"], 1.0, -1.0)  # flip exactly the wrong bits
    obs, r, terminated, truncated, info = env.step(flip)
    assert np.array_equal(obs["achieved_goal"], obs["desired_goal"]) and r == 0.0 and info["is_success"] == 1.0
    assert not terminated and not truncated
    obs, r, _, _, info = env.step(np.array([1.0, -1.0, -1.0, -1.0]))  # one bit off
    assert r == -1.0 and info["is_success"] == 0.0
    assert env.compute_reward(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), {}).tolist() == [0.0, -1.0]
    point = PointReachEnv()
    obs, _ = point.reset(seed=0)
    p, g = obs["achieved_goal"], obs["desired_goal"]
    obs, r, _, _, _ = point.step(np.array([1.0, -0.5]))
    assert np.allclose(obs["achieved_goal"], np.clip(p + 0.1 * np.array([1.0, -0.5]), -1, 1))
    assert r == (0.0 if np.linalg.norm(obs["achieved_goal"] - g) <= 0.1 else -1.0)
    assert point.compute_reward(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[0.05, 0.05], [0.2, 0.0]]),
                                {}).tolist() == [0.0, -1.0]


# ---- the HER paper's additions to DDPG ------------------------------------------------------------

def test_the_action_penalty_is_its_formula_on_both_gradient_paths():
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actor, critic = Actor(3, low, high, (16, 16)), Critic(3, 2, (16, 16))
    obs = torch.randn(32, 3)
    lam = 0.7
    unit = actor.net(obs)  # tanh(f(s)) = (μ(s) − bias) / scale
    unit_from_action = (actor(obs) - actor.action_bias) / actor.action_scale
    expected = -critic(obs, actor(obs)).mean() + lam * unit_from_action.square().mean()
    torch.testing.assert_close(actor_loss(actor, critic, obs, lam), expected)
    torch.testing.assert_close(unit, (actor(obs) - actor.action_bias) / actor.action_scale)
    auto, auto_loss, _ = autograd_actor_gradients(actor, critic, obs, action_l2=lam)
    with torch.no_grad():  # as the learner calls it
        written, loss, _ = actor_gradients(actor.net, critic_nets(critic), obs, actor.action_scale, actor.action_bias,
                                           action_l2=lam)
        plain, _, _ = actor_gradients(actor.net, critic_nets(critic), obs, actor.action_scale, actor.action_bias)
    torch.testing.assert_close(loss, auto_loss)
    for (gw, gb), (aw, ab) in zip(written, auto):
        torch.testing.assert_close(gw, aw, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gb, ab, rtol=1e-5, atol=1e-7)
    assert not torch.equal(plain[0][0], written[0][0])  # the penalty changed the gradient


def test_handwritten_and_autograd_updates_train_identically_with_the_her_papers_additions():
    tiny = dict(hidden=(16, 16), batch_size=32, total_steps=500, learning_starts=100, eval_interval=0,
                eval_episodes=1, buffer_size=2000, action_l2=1.0, random_action_prob=0.3, her="future", obs_norm=True)
    a, b = (DDPG("ddpgkit/PointReach-v0", DDPGConfig(**tiny, backward=bw), seed=4).learn().model_tensors()
            for bw in ("autograd", "handwritten"))
    assert identical(a, b)  # bit for bit


def test_random_actions_replace_a_share_of_the_exploration_actions_and_cost_nothing_when_off():
    agent = DDPG("ddpgkit/PointReach-v0", DDPGConfig(random_action_prob=0.3, noise="none"))
    obs = np.zeros(agent.obs_dim, np.float32)
    mu = agent.act(obs)
    acts = np.array([agent.explore(obs) for _ in range(2000)])
    random = ~np.all(acts == mu, axis=1)
    assert abs(random.mean() - 0.3) < 0.04
    assert acts[random].min() >= -1 and acts[random].max() <= 1 and acts[random].std() > 0.5  # uniform in [−1, 1]
    off = DDPG("ddpgkit/PointReach-v0", DDPGConfig(noise="none"))
    state = off.explore_generator.get_state()
    off.explore(obs)
    assert torch.equal(state, off.explore_generator.get_state())  # DDPG's exploration draws nothing more


# ---- success rates in every file and command ----------------------------------------------------

def test_success_rates_reach_metrics_summary_eval_and_report(tmp_path, capsys):
    cfg = ["--steps", "600", "--learning-starts", "100", "--hidden", "16,16", "--batch-size", "32",
           "--eval-interval", "300", "--eval-episodes", "4", "--buffer-size", "2000", "--her", "future"]
    for seed in (0, 1):
        r = run_cli(capsys, "train", "ddpgkit/PointReach-v0", *cfg, "--seed", seed, "--out", tmp_path / f"r{seed}")
        assert r.code == 0, r.err
    summary = json.loads((tmp_path / "r0" / "summary.json").read_text())
    rate = summary["final_eval_success_rate"]
    assert rate is not None and 0.0 <= rate <= 1.0 and rate * 4 == round(rate * 4)  # a share of 4 episodes
    header, *rows = (tmp_path / "r0" / "metrics.csv").read_text().splitlines()
    cols = header.split(",")
    episodes = [dict(zip(cols, row.split(","))) for row in rows]
    assert {e["episode_success"] for e in episodes if e["episode_return"]} <= {"0.0", "1.0"}
    assert episodes[-1]["eval_success_rate"] == repr(rate)
    r = run_cli(capsys, "eval", tmp_path / "r0", "--episodes", "4")
    assert r.code == 0 and "success" in r.out and f"{rate:.2f}" in r.out
    r = run_cli(capsys, "report", tmp_path, "--out", tmp_path / "rep", "--reps", "200")
    assert r.code == 0 and "final success rate IQM" in r.out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    [group] = report["groups"]
    assert sorted(group["success"]) == sorted(json.loads((tmp_path / f"r{s}" / "summary.json").read_text())
                                              ["final_eval_success_rate"] for s in (0, 1))
    assert len(group["success_curve"]) == 2 and "Success rates" in (tmp_path / "rep" / "report.md").read_text()
    plain = json.loads((tmp_path / "r0" / "config.toml").parent.joinpath("summary.json").read_text())
    assert plain["final_eval_success_rate"] == rate


def test_an_env_without_is_success_leaves_the_success_columns_empty():
    agent = DDPG("Pendulum-v1", DDPGConfig(total_steps=400, learning_starts=100, eval_interval=200,
                                           eval_episodes=1, hidden=(8, 8), batch_size=16)).learn()
    assert all(r["episode_success"] is None and r["eval_success_rate"] is None for r in agent.trainer.history)


# ---- exact resume and groups --------------------------------------------------------------------

def test_a_her_run_killed_mid_episode_resumes_bit_identically(tmp_path):
    from tests.test_resume import SMALL, crash_and_resume

    cfg = DDPGConfig(**SMALL, her="future", obs_norm=True, action_l2=1.0, random_action_prob=0.3)
    full, resumed = crash_and_resume(tmp_path, cfg, crash_at=775, env="ddpgkit/PointReach-v0", kept=("600", "300"))
    resumed.learn()
    assert identical(full.model_tensors(), resumed.model_tensors())
    assert numbers(full.trainer.history) == numbers(resumed.trainer.history)


def test_a_group_member_with_her_samples_and_learns_what_it_does_alone():
    from tests.test_td3 import member_learns_as_alone

    cfg = DDPGConfig(**{**GOAL, "total_steps": 400, "batch_size": 32, "hidden": (16, 16)}, action_l2=1.0,
                     obs_norm=True)
    member_learns_as_alone("ddpgkit/PointReach-v0", cfg, [0, 1], 1, 260)  # 60 updates on relabelled batches


# ---- the preset ---------------------------------------------------------------------------------

def test_the_her_preset_holds_the_baselines_her_config():
    p = DDPGConfig.preset("andrychowicz2017-her")
    assert (p.hidden, p.actor_lr, p.critic_lr, p.batch_size) == ((256, 256, 256), 1e-3, 1e-3, 256)
    assert p.tau == pytest.approx(1 - 0.95)  # baselines' polyak 0.95 weights the target network
    assert p.gamma == pytest.approx(1 - 1 / 50)  # 1 − 1/T, Fetch's T = 50
    assert (p.action_l2, p.random_action_prob, p.noise, p.noise_scale) == (1.0, 0.3, "gaussian", 0.2)
    assert (p.obs_norm, p.obs_clip, p.her, p.her_k) == (True, 5.0, "future", 4)
    assert "andrychowicz2017-her" in PRESETS
    assert p.algorithm() == "DDPG (normalized observations, HER future, k = 4)"


# ---- learning: HER solves what DDPG alone cannot ------------------------------------------------

def _success(env, steps, seed, **changes):
    cfg = DDPGConfig(**{**GOAL, "total_steps": steps, "eval_interval": 0, **changes})
    with DDPG(env, cfg, seed=seed) as agent:
        agent.learn()
        return agent.trainer.history[-1]["eval_success_rate"]


def test_her_learns_bit_flipping_where_ddpg_without_it_never_succeeds():
    """10 bits, 10 steps per episode, γ = 0.9: with HER ≥ 0.7 of 20 evaluation episodes end on the goal after
    10,000 steps (measured 0.9, 0.85, 0.8 on seeds 0-2); without HER, 0 of 20 — the reward was −1 at every step
    it ever saw."""
    assert _success("ddpgkit/BitFlip-v0", 10_000, seed=0, gamma=0.9) >= 0.7
    assert _success("ddpgkit/BitFlip-v0", 10_000, seed=0, gamma=0.9, her="none") == 0.0


def test_her_learns_to_reach_a_point():
    """A goal disc of radius 0.1 in [−1, 1]², 50 steps per episode, γ = 0.98: with HER ≥ 0.9 of 20 evaluation
    episodes end inside it after 3,000 steps (measured: 1.0 from step 2,000 on seeds 0 and 1)."""
    assert _success("ddpgkit/PointReach-v0", 3_000, seed=0, gamma=0.98) >= 0.9
