"""Observation normalization (issue 25, part 2): running statistics of the observations collected, inside the
agent, in checkpoints, one set per member of a group; off by default."""

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig, resume_experiment, run_experiment
from ddpgkit.agents.group import DDPGGroup
from ddpgkit.errors import ConfigError
from ddpgkit.nn.normalize import EPS, RunningNorm, normalize_stacked

TINY = dict(hidden=(16, 16), batch_size=32, total_steps=400, learning_starts=100, buffer_size=1000, eval_interval=0,
            eval_episodes=2, checkpoint_interval=200, obs_norm=True)
TIMING = ("steps_per_s", "wall_s")


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_running_statistics_are_the_mean_and_variance_of_everything_seen_and_the_map_clips():
    rng = np.random.default_rng(0)
    data = rng.normal([3.0, -1.0, 0.0], [2.0, 0.5, 1e-3], size=(1000, 3))
    norm = RunningNorm(3, clip=2.0)
    assert torch.equal(norm(torch.tensor([[9.0, -9.0, 0.5]])), torch.tensor([[2.0, -2.0, 0.5]]))  # μ 0, σ² 1 at first
    for chunk in (data[:1], data[1:10], data[10:500], data[500:]):  # one at a time, and in batches
        norm.update(chunk)
    assert float(norm.count) == 1000
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.variance().numpy(), data.var(0), rtol=1e-10)
    x = torch.tensor(data[:5], dtype=torch.float32)
    expected = np.clip((data[:5] - data.mean(0)) / np.sqrt(data.var(0) + EPS), -2.0, 2.0)
    np.testing.assert_allclose(norm(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    other = RunningNorm(3, clip=2.0)
    other.update(data[:100])
    stacked = normalize_stacked(torch.stack([x, x]), [norm, other])  # (N, B, dim), each by its own
    assert torch.equal(stacked[0], norm(x)) and torch.equal(stacked[1], other(x))


def test_statistics_come_from_collected_observations_and_every_path_reads_through_them(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**TINY), seed=0).learn()
    rows = agent.buffer.data[: agent.buffer.size].numpy().astype(np.float64)  # [obs 0:3 | a 3 | r 4 | next_obs 5:8 ...]
    seen = np.concatenate([rows[[0, 200], 0:3], rows[:, 5:8]])  # each episode's first observation, then each step's
    assert float(agent.obs_norm.count) == len(seen) == 402
    np.testing.assert_allclose(agent.obs_norm.mean.numpy(), seen.mean(0), rtol=1e-9)
    np.testing.assert_allclose(agent.obs_norm.variance().numpy(), seen.var(0), rtol=1e-9)
    obs = rows[:7, 0:3].astype(np.float32)
    with torch.no_grad():  # predict: μ of the normalized observation
        expected = agent.actor(agent.obs_norm(torch.as_tensor(obs))).numpy()
    np.testing.assert_allclose(agent.predict(obs)[0], expected, rtol=1e-6, atol=1e-6)
    # evaluation reads them too, and a checkpoint carries them: the loaded agent acts the same
    loaded = DDPG.load(agent.save(tmp_path / "c"))
    assert torch.equal(loaded.obs_norm.mean, agent.obs_norm.mean) and float(loaded.obs_norm.count) == 402
    assert np.array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    assert np.array_equal(loaded.evaluate(2), agent.evaluate(2))
    # the update learns on normalized batches: a sampled batch is normalized by the statistics as they are
    batch = agent.buffer.split(agent.buffer.data[:8])
    normalized = agent.normalize_batch(batch)
    assert torch.equal(normalized.obs, agent.obs_norm(batch.obs)) and torch.equal(normalized.reward, batch.reward)


def test_off_by_default_and_validated():
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(8,)))
    assert agent.obs_norm is None and not any(k.startswith("obs_norm") for k in agent.model_tensors())
    with pytest.raises(ConfigError, match="obs_clip must be > 0"):
        DDPGConfig(obs_clip=0.0)


def test_a_group_keeps_one_set_per_member_and_its_members_start_as_single_runs():
    cfg = DDPGConfig(**{**TINY, "total_steps": 120})
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=[0, 1])
    single = DDPG("Pendulum-v1", cfg, seed=0)
    member = group.members[0]
    group.learn_until(100)
    single.learn_until(100)  # the warm-up: the same observations
    assert torch.equal(member.obs_norm.mean, single.obs_norm.mean) and torch.equal(member.obs_norm.m2,
                                                                                  single.obs_norm.m2)
    assert not torch.equal(group.members[1].obs_norm.mean, member.obs_norm.mean)  # its own env, its own numbers
    group.learn_until(120)
    single.learn_until(120)  # 20 updates on batches drawn alike
    ours, theirs = member.model_tensors(), single.model_tensors()
    for k in ours:  # equal up to the batched products' rounding
        torch.testing.assert_close(ours[k].double(), theirs[k].double(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seeds", [[3], [3, 4]])
def test_a_run_with_normalization_resumes_bit_identically(tmp_path, seeds):
    cfg = DDPGConfig(**TINY)
    full = run_experiment("Pendulum-v1", cfg, [tmp_path / f"full{s}" for s in seeds], seeds=seeds)
    parts = [tmp_path / f"part{s}" for s in seeds]
    run_experiment("Pendulum-v1", cfg.replace(total_steps=200), parts, seeds=seeds)
    resumed = resume_experiment(parts, total_steps=400).run()
    for a, b in zip(full, resumed, strict=True):
        assert identical(a.agent.model_tensors(), b.agent.model_tensors())  # the statistics among them
        rows = [[{k: v for k, v in r.items() if k not in TIMING} for r in x.agent.trainer.history] for x in (a, b)]
        assert rows[0] == rows[1]
