from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.errors import CheckpointError, NonFiniteError
from ddpgkit.training.loop import METRIC_COLUMNS, Callback

from tests.markers import needs_bf16

SMALL = dict(hidden=(32, 32), total_steps=400, learning_starts=100, batch_size=32, buffer_size=1000,
             eval_interval=200, eval_episodes=2)


def weights(agent):
    return {k: v.clone() for k, v in agent.model_tensors().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def numbers(history):
    return [{k: v for k, v in row.items() if k not in ("steps_per_s", "wall_s")} for row in history]


def test_same_seed_same_numbers_different_seed_different():
    cfg = DDPGConfig(**SMALL)
    a = DDPG("Pendulum-v1", cfg, seed=1).learn()
    b = DDPG("Pendulum-v1", cfg, seed=1).learn()
    c = DDPG("Pendulum-v1", cfg, seed=2).learn()
    assert same_weights(weights(a), weights(b))
    assert numbers(a.trainer.history) == numbers(b.trainer.history)
    assert not same_weights(weights(a), weights(c))


def test_learn_in_two_calls_equals_one_call():
    cfg = DDPGConfig(**{**SMALL, "eval_interval": 0})
    one = DDPG("Pendulum-v1", cfg, seed=0).learn(400)
    two = DDPG("Pendulum-v1", cfg, seed=0).learn(250).learn(150)  # learn(n) adds n steps, as in SB3
    assert same_weights(weights(one), weights(two))
    assert two.trainer.step == 400 and two.learner.num_updates == one.learner.num_updates == 300


def test_metrics_rows_and_callbacks():
    seen = {"steps": 0, "episodes": 0, "evals": 0, "rows": []}

    class Count(Callback):
        def on_step(self, trainer):
            seen["steps"] += 1

        def on_episode_end(self, trainer, ret, length):
            seen["episodes"] += 1
            assert length == 200  # Pendulum's time limit

        def on_eval(self, trainer, returns):
            seen["evals"] += 1
            assert returns.shape == (2,)

        def on_metrics(self, trainer, row):
            seen["rows"].append(row)

    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL)).learn(callback=Count())
    assert seen["steps"] == 400 and seen["episodes"] == 2 and seen["evals"] == 2  # evals at 200 and 400
    assert len(seen["rows"]) == 4 and all(set(r) == set(METRIC_COLUMNS) for r in seen["rows"])
    learned = [r for r in seen["rows"] if r["critic_loss"] is not None]
    assert learned and all(np.isfinite([r["critic_loss"], r["actor_loss"], r["q_mean"]]).all() for r in learned)
    assert agent.trainer.last_eval is not None


def test_callback_can_stop_training():
    class StopAt(Callback):
        def on_step(self, trainer):
            return trainer.step < 150

    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL)).learn(callback=StopAt())
    assert agent.trainer.step == 150


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_tiny_learning_mirror_task(precision):
    # one-step task whose optimum μ*(s) = −s is known: the actor must find it
    cfg = DDPGConfig(hidden=(64, 64), total_steps=2500, learning_starts=300, batch_size=64, buffer_size=5000,
                     gamma=0.0, eval_interval=0, eval_episodes=50, noise_scale=0.2, precision=precision)
    agent = DDPG("ddpgkit/Mirror-v0", cfg, seed=0).learn()
    s = torch.rand(500, 2) * 2 - 1
    a = agent.act(s.numpy())
    err = np.abs(a + s.numpy()).mean()
    assert err < 0.1, err
    random_policy = -np.mean(np.sum((np.random.default_rng(0).uniform(-1, 1, (500, 2)) + s.numpy()) ** 2, 1) / 2)
    assert agent.evaluate().mean() > 0.05 * random_policy  # random: ~ -0.67, learned: > -0.03
    # the critic learned Q(s, a) = r(s, a) = −‖a + s‖²/2 near the policy
    q = agent.critic(s, torch.as_tensor(a)).detach().squeeze(1)
    expected = -((torch.as_tensor(a) + s) ** 2).sum(1) / 2
    assert (q - expected).abs().mean() < 0.05


def test_actions_within_bounds_and_predict_shapes():
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL))
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 10
    a = agent.act(obs)
    assert a.shape == (64, 1) and np.all(a >= -2) and np.all(a <= 2)
    assert agent.act(obs[0]).shape == (1,)
    noisy = np.stack([agent.explore(obs[0]) for _ in range(50)])
    assert np.all(noisy >= -2) and np.all(noisy <= 2) and noisy.std() > 0
    r = np.stack([agent.random_action() for _ in range(2000)])
    assert r.min() >= -2 and r.max() <= 2 and abs(r.mean()) < 0.1 and r.std() == pytest.approx(4 / 12**0.5, rel=0.05)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=3).learn()
    path = agent.save(tmp_path / "ckpt")
    loaded = DDPG.load(path)
    assert loaded.config == agent.config and loaded.env_id == "Pendulum-v1"
    assert same_weights(weights(agent), weights(loaded))
    obs = np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32)
    assert np.array_equal(agent.act(obs), loaded.act(obs))
    np.testing.assert_array_equal(agent.evaluate(3), loaded.evaluate(3))


def test_load_refuses_other_dimensions_before_copying(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL))
    path = agent.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="observation/action dimensions 3/1, but the env has 2/2"):
        DDPG.load(path, env="ddpgkit/Mirror-v0")


def test_non_finite_env_stops_with_the_step():
    from ddpgkit.envs.make import make_env

    env = make_env("ddpgkit/NonFinite-v0", bad_step=37, kind="obs")
    with pytest.raises(NonFiniteError, match="non-finite observation at step 36"):
        DDPG(env, DDPGConfig(**SMALL)).learn()
    env = make_env("ddpgkit/NonFinite-v0", bad_step=120, kind="reward", value="inf")
    agent = DDPG(env, DDPGConfig(**SMALL))
    with pytest.raises(NonFiniteError, match="non-finite reward at step 119: inf"):
        agent.learn()
    assert len(agent.buffer) == 119  # the bad transition was never stored
    assert all(torch.isfinite(t).all() for t in agent.model_tensors().values())


@pytest.mark.parametrize("env_id,act_dim", [("Pendulum-v1", 1), ("ddpgkit/Mirror-v0", 2)])
def test_predict_has_stable_baselines3s_shape(env_id, act_dim):
    """`action, _ = model.predict(obs, deterministic=True)` as SB3 users write it: a tuple (action, None)
    for one observation or a batch; the action is μ(s) (SB3's DDPG adds no noise in predict either)."""
    agent = DDPG(env_id, DDPGConfig(**SMALL), seed=1)
    obs, _ = agent.env.reset(seed=0)
    action, state = agent.predict(obs, deterministic=True)
    assert state is None and action.shape == (act_dim,) and np.array_equal(action, agent.act(obs))
    batch = np.stack([obs, obs * 0.5])
    actions, _ = agent.predict(batch)
    assert actions.shape == (2, act_dim) and np.array_equal(actions, agent.act(batch))
    assert np.array_equal(agent.predict(obs, deterministic=False)[0], action)
    assert np.array_equal(agent.predict(obs, state=None, episode_start=np.array([True]))[0], action)


def test_learn_counts_the_steps_to_add():
    agent = DDPG("Pendulum-v1", DDPGConfig(**{**SMALL, "eval_interval": 0}), seed=0)
    agent.learn(120)
    assert agent.num_timesteps == 120
    agent.learn(80)  # 80 more, as Stable-Baselines3's learn(total_timesteps) does
    assert agent.num_timesteps == 200
    agent.learn()  # None: up to the config's total_steps
    assert agent.num_timesteps == SMALL["total_steps"]
    with pytest.raises(ValueError, match="total_timesteps must be an integer"):
        agent.learn(-5)


# ---- issue 23, items 9 and 12: an agent's resources and what a model-only load says ----------------------------

CLOSED: list[int] = []  # the numbers of the RecordedPendulum instances closed


class RecordedPendulum(PendulumEnv):
    """Pendulum, numbered, its close() recorded in CLOSED."""

    made = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        RecordedPendulum.made += 1
        self.number = RecordedPendulum.made

    def close(self):
        CLOSED.append(self.number)
        super().close()


def test_close_closes_the_envs_the_agent_made_and_not_the_callers():
    import gymnasium as gym

    gym.register("ddpgkit-test/Recorded-v0", entry_point=RecordedPendulum, max_episode_steps=20)
    try:
        CLOSED.clear()
        with DDPG("ddpgkit-test/Recorded-v0", DDPGConfig(**SMALL)) as agent:
            own = agent.env.unwrapped.number
            agent.evaluate(episodes=3)  # the evaluation env and two copies, made from the spec
            copies = [e.unwrapped.number for e in agent.eval_envs.copies(3)]
        assert sorted(CLOSED) == sorted([own, *copies]) and len(set(copies)) == 3

        CLOSED.clear()
        mine, my_eval = gym.make("ddpgkit-test/Recorded-v0"), gym.make("ddpgkit-test/Recorded-v0")
        agent = DDPG(mine, DDPGConfig(**SMALL), eval_env=my_eval)
        agent.evaluate(episodes=2)  # one more copy of my_eval's kind, made by the agent
        made = [e.unwrapped.number for e in agent.eval_envs.copies(2)][1:]
        agent.close()
        assert CLOSED == made  # the caller's two envs stay open
    finally:
        gym.registry.pop("ddpgkit-test/Recorded-v0", None)


def test_a_model_only_load_allocates_no_replay_buffer_and_says_its_step(tmp_path):
    """A buffer of 10^11 transitions cannot be allocated on this machine (or any: 2.8 TB): the agent is built,
    trained briefly on another config, saved, and loaded without its training state to act and evaluate."""
    huge = DDPGConfig(**{**SMALL, "buffer_size": 10**11})
    agent = DDPG("Pendulum-v1", huge, seed=0)  # nothing allocated yet
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "0":  # Linux refuses what cannot fit
        with pytest.raises(RuntimeError):
            agent.buffer  # noqa: B018 - allocating it is what fails
    trained = DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=0).learn(300)
    path = trained.save(tmp_path / "ckpt", training_state=True)
    loaded = DDPG.load(path, training_state=False)
    assert loaded.num_timesteps == 300 and loaded.trainer is None  # Stable-Baselines3's num_timesteps
    assert loaded._buffer is None  # noqa: SLF001 - loading, acting and evaluating allocate none
    loaded.evaluate(episodes=1)
    assert loaded._buffer is None  # noqa: SLF001
    assert np.array_equal(loaded.act(np.zeros(3, np.float32)), trained.act(np.zeros(3, np.float32)))
    # training it starts a run of its own from step 0 (SB3's learn with reset_num_timesteps)
    loaded.learn(150)
    assert loaded.num_timesteps == 150 and loaded.buffer.size == 150


def test_explore_refuses_a_batch():
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=0)
    assert agent.explore(np.zeros(3, np.float32)).shape == (1,)
    with pytest.raises(ValueError, match=r"explore takes one observation \(obs_dim,\), got shape \(4, 3\)"):
        agent.explore(np.zeros((4, 3), np.float32))
    assert agent.act(np.zeros((4, 3), np.float32)).shape == (4, 1)  # act takes a batch


# ---- issue 23, item 13: the settings no test ran ---------------------------------------------------------------

def test_updates_per_step_makes_that_many_updates_on_consecutive_batches():
    """updates_per_step = 2 is two gradient steps after every env step: the first learning step of such a run
    equals a run of one update per step followed by one more update on the next batch drawn, bit for bit; and
    K learning steps make 2K updates."""
    cfg = DDPGConfig(**SMALL)
    start = cfg.learning_starts
    two = DDPG("Pendulum-v1", cfg.replace(updates_per_step=2), seed=4).learn_until(start + 1)
    one = DDPG("Pendulum-v1", cfg, seed=4).learn_until(start + 1)
    assert (two.learner.num_updates, one.learner.num_updates) == (2, 1)
    one.update(one.buffer.sample(cfg.batch_size))  # the second update of that step, written out
    assert same_weights(weights(two), weights(one))
    two.learn_until(start + 50)
    assert two.learner.num_updates == 2 * 50


def test_no_noise_explores_with_the_policy_itself():
    """noise = "none": the training action after the warm-up is μ(s) itself, and the noise metric is 0."""
    cfg = DDPGConfig(**SMALL, noise="none")
    agent = DDPG("Pendulum-v1", cfg, seed=2).learn_until(cfg.learning_starts)
    obs = agent.trainer.obs
    expected = agent.act(obs)  # μ(s) before the step's update
    assert np.array_equal(agent.explore(obs), expected)
    agent.learn_until(cfg.learning_starts + 1)
    stored = agent.buffer.latest(1).action[0].numpy()
    assert np.array_equal(stored, expected)
    agent.learn_until(cfg.total_steps)
    rows = [r for r in agent.trainer.history if r["noise_rms"] is not None]
    assert rows and all(r["noise_rms"] == 0.0 for r in rows)
