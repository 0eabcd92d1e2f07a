"""`ddpgkit inspect`: the learned policy and value over the state space, from a run directory alone."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ddpgkit import DDPG, DDPGConfig, run_experiment
from ddpgkit.analysis.inspection import inspect_run, observation_slice, pendulum_slice, value_maps
from ddpgkit.errors import ConfigError

from tests.clihelp import assert_one_line_error, run_cli
from tests.pngcheck import assert_png

TINY = DDPGConfig(hidden=(16, 16), total_steps=600, learning_starts=100, batch_size=32, buffer_size=5000,
                  eval_interval=300, eval_episodes=2, checkpoint_interval=200, keep_checkpoints=5)


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    return run_experiment("Pendulum-v1", TINY, tmp_path_factory.mktemp("inspect") / "run")[0].run_dir


def test_pendulum_plane_is_its_angle_and_velocity():
    plane = pendulum_slice()
    points = np.array([[0.0, 0.0], [math.pi / 2, 3.0], [-2.0, -8.0]])
    obs = plane.to_obs(points)
    expected = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 3.0], [math.cos(-2.0), math.sin(-2.0), -8.0]])
    np.testing.assert_allclose(obs, expected, atol=1e-12)
    np.testing.assert_allclose(plane.from_obs(obs), points, atol=1e-12)
    assert plane.x_range == (-math.pi, math.pi) and plane.y_range == (-8.0, 8.0)


def test_value_maps_are_the_networks_on_the_grid():
    agent = DDPG("Pendulum-v1", TINY, seed=3)
    maps = value_maps(agent, pendulum_slice(), resolution=5)
    assert maps.action.shape == maps.q.shape == (5, 5)
    # the point in row 1 (θ̇ = ys[1]) and column 3 (θ = xs[3]), computed directly
    theta, speed = maps.xs[3], maps.ys[1]
    obs = torch.tensor([[math.cos(theta), math.sin(theta), speed]], dtype=torch.float32)
    with torch.no_grad():
        action = agent.actor(obs)
        q = agent.critic(obs, action)
    assert maps.action[1, 3] == pytest.approx(float(action[0, 0]), abs=1e-6)
    assert maps.q[1, 3] == pytest.approx(float(q[0, 0]), abs=1e-6)
    assert np.all(np.abs(maps.action) <= 2.0)  # Pendulum's torque bound


def test_observation_slice_holds_the_other_dimensions_at_a_visited_state():
    visited = np.array([[0.0, 10.0, -1.0], [1.0, 20.0, -2.0], [2.0, 30.0, -3.0]])
    plane = observation_slice([2, 0], visited)
    obs = plane.to_obs(np.array([[5.0, 6.0]]))
    np.testing.assert_allclose(obs, [[6.0, 20.0, 5.0]])  # dim 1 at the middle state's value
    assert plane.x_range == pytest.approx((-3.2, -0.8)) and plane.y_range == pytest.approx((-0.2, 2.2))
    for dims, fragment in (([0, 0], "two different"), ([0, 3], r"in \[0, 2\]"), ([1], "two observation"),
                           ([0, 1, 2], "two observation")):
        with pytest.raises(ConfigError, match=fragment):
            observation_slice(dims, visited)


def test_inspect_writes_the_maps_and_an_animation_over_the_checkpoints(pendulum_run, tmp_path, capsys):
    r = run_cli(capsys, "inspect", pendulum_run, "--out", tmp_path / "pics")
    assert r.code == 0, r.err
    assert "step 600 over the pendulum's state" in r.out
    assert_png(tmp_path / "pics" / "value_maps.png")
    gif = Image.open(tmp_path / "pics" / "value_maps.gif")
    assert gif.format == "GIF" and gif.n_frames == 3  # checkpoints 200, 400, 600 (keep_checkpoints 5)
    assert_png(tmp_path / "pics" / "overestimation.png")
    assert_png(pendulum_run / "learning_curve.png")  # with the same panel beside the returns
    result = inspect_run(pendulum_run, checkpoint=400, out=tmp_path / "at400")
    assert result.step == 400 and result.steps == [200, 400, 600]
    assert_png(result.maps)


def test_inspect_bad_input_one_line(pendulum_run, tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "inspect", tmp_path / "nope"), "no such run directory")
    assert_one_line_error(run_cli(capsys, "inspect", pendulum_run, "--checkpoint", "123"),
                          "no checkpoint at step 123", "200, 400, 600")
    assert_one_line_error(run_cli(capsys, "inspect", pendulum_run, "--dims", "0,x"), "--dims")
    assert_one_line_error(run_cli(capsys, "inspect", pendulum_run, "--dims", "1,1", "--out", tmp_path / "o"),
                          "two different observation dimensions")


def test_inspect_another_env_needs_and_uses_two_observation_dimensions(tmp_path, capsys):
    cfg = TINY.replace(total_steps=300, eval_interval=0, checkpoint_interval=100)
    run = run_experiment("MountainCarContinuous-v0", cfg, tmp_path / "car")[0].run_dir
    assert_one_line_error(run_cli(capsys, "inspect", run), "name two observation dimensions", "--dims 0,1")
    r = run_cli(capsys, "inspect", run, "--dims", "0,1")
    assert r.code == 0, r.err
    assert "observation dimensions 0 and 1" in r.out
    assert_png(run / "inspect" / "value_maps.png")


# ---- the critic against the returns obtained (issue 13, item 2) -----------------------------------

def test_discounted_returns_of_a_hand_computed_episode():
    from ddpgkit.envs.episodes import discounted_returns

    # G_2 = 3 + 0.5·4 = 5, G_1 = 2 + 0.5·5 = 4.5, G_0 = 1 + 0.5·4.5 = 3.25
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5, bootstrap=4.0), [3.25, 4.5, 5.0])
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0])


def test_value_check_against_direct_computation():
    from ddpgkit.envs.episodes import Episode

    agent = DDPG("Pendulum-v1", TINY.replace(gamma=0.9), seed=1)
    obs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -1.0], [-1.0, 0.0, 2.0]], dtype=np.float32)  # s_0, s_1, s_2
    rewards = np.array([-1.0, -2.0])
    with torch.no_grad():
        t = torch.as_tensor(obs)
        q = agent.critic(t, agent.actor(t))[:, 0].double().numpy()
    for truncated, tail in ((True, q[2]), (False, 0.0)):  # cut by the time limit: completed by Q(s_2, μ(s_2))
        episode = Episode(-3.0, rewards, obs, np.zeros((2, 1)), terminated=not truncated, truncated=truncated)
        g1 = -2.0 + 0.9 * tail
        g0 = -1.0 + 0.9 * g1
        q_mean, g_mean = agent.critic_against_returns([episode])
        assert q_mean == pytest.approx((q[0] + q[1]) / 2, abs=1e-6)
        assert g_mean == pytest.approx((g0 + g1) / 2, abs=1e-6)


def test_every_evaluation_row_has_the_critic_against_the_returns(pendulum_run):
    from ddpgkit.storage.rundir import read_metrics

    evals = [r for r in read_metrics(pendulum_run) if r["eval_mean"] is not None]
    assert [r["step"] for r in evals] == [300, 600]
    for r in evals:
        assert r["eval_q_gap"] == pytest.approx(r["eval_q_mean"] - r["eval_mc_return"], abs=1e-9)
    assert all(r["eval_q_mean"] is None for r in read_metrics(pendulum_run) if r["eval_mean"] is None)


# ---- the NaN sentinel (issue 13, item 3, its first part) ------------------------------------------

def test_a_non_finite_loss_stops_the_update_before_anything_is_applied():
    from ddpgkit.errors import NonFiniteUpdate

    agent = DDPG("Pendulum-v1", TINY, seed=0)
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(32, agent.buffer.width, generator=g)
    rows[5, agent.buffer._cols["reward"][0]] = float("nan")
    before = {k: v.clone() for k, v in agent.model_tensors().items()}
    with pytest.raises(NonFiniteUpdate, match="non-finite critic loss in an update") as info:
        agent.update(agent.buffer.split(rows))
    assert torch.isnan(info.value.batch.reward).any()
    after = agent.model_tensors()
    assert all(torch.equal(before[k], after[k]) for k in before) and agent.learner.num_updates == 0


@pytest.mark.parametrize("backward", ["handwritten", "autograd"])
def test_an_actor_step_that_breaks_after_the_critic_stepped_says_so(backward):
    """The online actor enters only the actor step (the critic's target uses μ'), so a NaN in its weights lets
    this update's critic step through and stops the actor's: the message says the critic step was applied,
    the critic has moved, the actor and both targets have not, and the critic still takes gradients."""
    from ddpgkit.errors import NonFiniteUpdate

    agent = DDPG("Pendulum-v1", TINY.replace(backward=backward), seed=0)
    rows = torch.randn(32, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        agent.actor.net.linear0.weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in agent.model_tensors().items()}
    with pytest.raises(NonFiniteUpdate, match=r"non-finite actor (loss|gradient) \(this update's critic step was "
                                              r"applied\) in an update"):
        agent.update(agent.buffer.split(rows))
    after = agent.model_tensors()
    moved = {k for k in before if not torch.equal(before[k].nan_to_num(), after[k].nan_to_num())}  # NaN as 0
    assert moved == {k for k in before if k.startswith("critic.")}
    assert all(p.requires_grad for p in agent.critic.parameters())


def test_a_group_retires_the_seed_whose_update_broke_and_the_others_step_as_without_it():
    from ddpgkit.agents.group import DDPGGroup

    def updated(bad: bool):
        group = DDPGGroup.create("Pendulum-v1", TINY, seeds=[4, 7, 9])
        rows = torch.randn(3, 32, group.members[0].buffer.width, generator=torch.Generator().manual_seed(1))
        if bad:
            rows[1, 3, group.members[0].buffer._cols["reward"][0]] = float("inf")
        before = group.members[1].model_tensors()
        before = {k: v.clone() for k, v in before.items()}
        group.update(group.members[0].buffer.split(rows))
        return group, before

    group, before = updated(bad=True)
    [event] = group.learner.pop_retired()
    assert "critic loss of seed 7" in event.signal and event.member == 1  # the index run directories go by
    assert torch.isinf(event.batch.reward).any() and event.batch.reward.shape == (32, 1)  # its own slice
    assert group.learner.retired == {1}
    frozen = group.members[1].model_tensors()
    assert all(torch.equal(before[k], frozen[k]) for k in ("actor.net.linear0.weight", "critic.net.linear0.weight"))
    reference, _ = updated(bad=False)
    for k in (0, 2):  # the others: what they compute without the broken batch, bit for bit
        ours, ref = group.members[k].model_tensors(), reference.members[k].model_tensors()
        assert all(torch.equal(ours[n], ref[n]) for n in ref)


def test_a_run_that_overflows_stops_in_one_line_and_keeps_its_checkpoint_and_the_batch(tmp_path, capsys):
    from safetensors.torch import load_file

    run = tmp_path / "huge"
    r = run_cli(capsys, "train", "ddpgkit/HugeReward-v0", "--steps", "600", "--learning-starts", "20",
                "--batch-size", "64", "--hidden", "16,16", "--checkpoint-interval", "40", "--eval-interval", "0",
                "--out", run)
    assert_one_line_error(r, "non-finite critic loss at step", "the last checkpoint (step", "nonfinite_batch")
    summary = json.loads((run / "summary.json").read_text())  # a single run that diverged says so too
    assert summary["status"] == "diverged" and summary["signal"] == "critic loss" and summary["checkpoint"]
    assert summary["train_s"] > 0 and summary["steps_per_s"] > 0  # the time it trained, not 0 s
    batch = load_file(run / "nonfinite_batch.safetensors")
    assert batch["reward"].max() == pytest.approx(1e30, rel=1e-6)  # the transition that broke it is in there
    e = run_cli(capsys, "eval", run, "--episodes", "1")  # the last checkpoint loads: finite weights
    assert e.code == 0, e.err


def test_the_sentinels_fused_check_and_its_public_fallback_agree(monkeypatch):
    import ddpgkit.algo.learner as update

    assert update.NON_FINITE_KERNEL is not None  # this torch has the fused kernel: the fast path runs here
    cases = []
    for bad in (None, ("grad", float("nan")), ("grad", float("inf")), ("loss", float("-inf"))):
        grads = [torch.randn(8, 3), torch.randn(8)]
        loss = torch.tensor(0.5)
        if bad is not None and bad[0] == "grad":
            grads[0][2, 1] = bad[1]
        elif bad is not None:
            loss = torch.tensor(bad[1])
        cases.append((loss, grads, bad is None))
    for loss, grads, expected in cases:
        kept = [g.clone() for g in grads]
        assert update.all_finite(loss, grads) is expected
        assert all(torch.equal(a, b) or torch.isnan(a).any() for a, b in zip(grads, kept))  # values unchanged
    monkeypatch.setattr(update, "NON_FINITE_KERNEL", None)
    for loss, grads, expected in cases:
        assert update.all_finite(loss, grads) is expected


# ---- the optional TensorBoard sink (issue 13, item 4) ---------------------------------------------

def test_tensorboard_mirrors_the_metrics_rows(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ddpgkit.storage.rundir import read_metrics

    run = tmp_path / "tb"
    r = run_cli(capsys, "train", "Pendulum-v1", "--steps", "800", "--learning-starts", "100", "--hidden", "16,16",
                "--eval-interval", "400", "--eval-episodes", "2", "--out", run, "--tensorboard")
    assert r.code == 0, r.err
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = read_metrics(run)
    for tag, column in (("return/evaluation_mean", "eval_mean"), ("critic/eval_q_gap", "eval_q_gap"),
                        ("return/episode", "episode_return"), ("health/actor_grad_norm", "actor_grad_norm"),
                        ("health/noise_rms", "noise_rms")):
        expected = [(r["step"], r[column]) for r in rows if r[column] is not None]
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6)  # float32 in the file
