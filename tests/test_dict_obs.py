"""Dict observation spaces (issue 25, part 1): the keys in a fixed, recorded order, flattened at the boundary;
predict takes what a Gymnasium env gives; the layout is in every checkpoint and refused when the env's differs."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from ddpgkit import DDPG, DDPGConfig, resume_experiment, run_experiment
from ddpgkit.envs.spaces import ObservationLayout
from ddpgkit.envs.testing import DictMirrorEnv
from ddpgkit.errors import CheckpointError, EnvError
from ddpgkit.storage.manifest import read_manifest

TINY = dict(hidden=(16, 16), batch_size=32, total_steps=400, learning_starts=100, buffer_size=1000, eval_interval=0,
            eval_episodes=2, checkpoint_interval=200)
TIMING = ("steps_per_s", "wall_s")


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Renamed(DictMirrorEnv):
    """DictMirrorEnv whose position entry has another name."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"flip": spaces.MultiBinary(2),
                                              "where": spaces.Box(-1.0, 1.0, (2,), np.float32)})

    def _obs(self):
        return {"where": self._s.copy(), "flip": self._b.copy()}


class WithSpace(gym.Env):
    """An env with a given observation space (for the refusals)."""

    def __init__(self, space):
        self.observation_space = space
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)


def test_the_layout_reads_the_keys_in_the_spaces_order_and_flattens_one_observation_or_a_batch():
    space = spaces.Dict({"position": spaces.Box(-1, 1, (2,)), "flip": spaces.MultiBinary(3)})
    layout = ObservationLayout.of(space)
    assert layout.keys == (("flip", 3), ("position", 2)) and layout.obs_dim == 5  # Gymnasium sorts a dict's keys
    obs = {"position": np.array([0.5, -0.25]), "flip": np.array([1, 0, 1], dtype=np.int8)}
    flat = layout.flatten(obs)
    assert flat.dtype == np.float32 and flat.tolist() == [1.0, 0.0, 1.0, 0.5, -0.25]
    assert flat[layout.columns("position")].tolist() == [0.5, -0.25]
    other = {"position": np.zeros(2), "flip": np.ones(3)}
    batch = layout.flatten_batch([obs, other])
    assert batch.shape == (2, 5) and np.array_equal(batch[0], flat)
    stacked = layout.flatten_batch({"position": np.stack([obs["position"], other["position"]]),
                                    "flip": np.stack([obs["flip"], other["flip"]])})
    assert np.array_equal(stacked, batch)
    assert ObservationLayout.from_json(layout.to_json()) == layout
    assert ObservationLayout.from_json(ObservationLayout.of(spaces.Box(-1, 1, (3,))).to_json()).keys is None
    with pytest.raises(ValueError, match="no key 'flip'"):
        layout.flatten({"position": np.zeros(2)})
    with pytest.raises(ValueError, match="'position' has 3 values, expected 2"):
        layout.flatten({"position": np.zeros(3), "flip": np.zeros(3)})


@pytest.mark.parametrize("space,fragment", [
    (spaces.Dict({"inner": spaces.Dict({"x": spaces.Box(-1, 1, (2,))})}), "'inner' is itself a Dict"),
    (spaces.Dict({"mode": spaces.Discrete(3), "x": spaces.Box(-1, 1, (2,))}), "'mode' is a Discrete"),
    (spaces.Dict({"camera": spaces.Box(0, 255, (8, 8, 3), np.uint8)}), "'camera' is a Box of shape (8, 8, 3)"),
    (spaces.Box(-1, 1, (4, 4)), "1-D Box observation space (or a Dict of them)"),
    (spaces.Discrete(4), "needs a 1-D Box or a Dict observation space, got Discrete"),
])
def test_what_ddpgkit_cannot_read_is_refused_in_one_line(space, fragment):
    with pytest.raises(EnvError, match=None) as e:
        DDPG(WithSpace(space), DDPGConfig(**TINY))
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_a_dict_env_learns_without_a_wrapper_and_predict_takes_what_the_env_gives():
    cfg = DDPGConfig(hidden=(64, 64), total_steps=3000, learning_starts=300, batch_size=64, buffer_size=5000,
                     gamma=0.0, eval_interval=0, eval_episodes=50, noise_scale=0.2)
    agent = DDPG("ddpgkit/DictMirror-v0", cfg, seed=0).learn()
    rng = np.random.default_rng(0)
    observations = [{"position": rng.uniform(-1, 1, 2).astype(np.float32), "flip": rng.integers(0, 2, 2)}
                    for _ in range(300)]
    actions, state = agent.predict(observations)  # a batch of dicts, as a list
    assert state is None and actions.shape == (300, 2)
    best = np.stack([-o["position"] * (1 - 2 * o["flip"]) for o in observations])  # μ*(s, b) = −s ⊙ (1 − 2b)
    assert np.abs(actions - best).mean() < 0.15  # it reads both entries: the bits flip the signs
    np.testing.assert_allclose(agent.predict(observations[0])[0], actions[0], atol=1e-6)  # one dict (a row alone
    # may round differently in its last bit from the same row in a batch)
    as_batches = {k: np.stack([o[k] for o in observations]) for k in ("position", "flip")}
    assert np.array_equal(agent.predict(as_batches)[0], actions)  # a dict of batches
    assert agent.evaluate().mean() > -0.05  # a random policy scores about −0.67
    # the buffer stores each key: its rows are the flattened observations, bits as 0.0 / 1.0
    flip = agent.buffer.data[: agent.buffer.size, agent.obs_layout.columns("flip")]
    assert set(flip.unique().tolist()) == {0.0, 1.0}


def test_the_layout_is_in_config_toml_and_the_checkpoint_and_an_env_with_other_keys_is_refused(tmp_path):
    [result] = run_experiment("ddpgkit/DictMirror-v0", DDPGConfig(**TINY), tmp_path / "run")
    assert 'observation = "flip:2, position:2"' in (tmp_path / "run" / "config.toml").read_text()
    meta = read_manifest(result.checkpoint)["meta"]
    assert meta["observation"] == [["flip", 2], ["position", 2]] and meta["obs_dim"] == 4
    loaded = DDPG.load(result.checkpoint)
    assert identical(loaded.model_tensors(), result.agent.model_tensors())
    with pytest.raises(CheckpointError, match=r"made for observations flip:2, position:2, but the env gives "
                                              r"flip:2, where:2"):
        DDPG.load(result.checkpoint, env=Renamed())
    flat = WithSpace(spaces.Box(-1.0, 1.0, (4,), np.float32))  # four values too, but not by these keys
    flat.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(CheckpointError, match=r"made for observations flip:2, position:2, but the env gives Box\(4\)"):
        DDPG.load(result.checkpoint, env=flat)


@pytest.mark.parametrize("seeds", [[3], [3, 4]])
def test_a_dict_run_resumes_bit_identically(tmp_path, seeds):
    cfg = DDPGConfig(**TINY, n_step=1)
    full = run_experiment("ddpgkit/DictMirror-v0", cfg, [tmp_path / f"full{s}" for s in seeds], seeds=seeds)
    parts = [tmp_path / f"part{s}" for s in seeds]
    run_experiment("ddpgkit/DictMirror-v0", cfg.replace(total_steps=200), parts, seeds=seeds)
    resumed = resume_experiment(parts, total_steps=400).run()
    for a, b in zip(full, resumed, strict=True):
        assert identical(a.agent.model_tensors(), b.agent.model_tensors())
        rows = [[{k: v for k, v in r.items() if k not in TIMING} for r in x.agent.trainer.history] for x in (a, b)]
        assert rows[0] == rows[1]
        assert json.loads((b.run_dir / "summary.json").read_text())["final_eval_mean"] == a.summary["final_eval_mean"]


def test_a_box_env_records_its_obs_dim_and_reads_as_before(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**TINY))
    assert agent.obs_layout.keys is None and agent.obs_layout.to_json() == 3
    obs, _ = agent.env.reset(seed=0)
    assert agent.flat_obs(obs) is obs  # a Box's observation is used as the env gives it
    meta = read_manifest(agent.save(tmp_path / "c"))["meta"]
    assert meta["observation"] == 3


def test_the_group_explore_and_an_ordered_dicts_keys_read_dicts_as_the_agent_does():
    from collections import OrderedDict

    from ddpgkit.agents.group import DDPGGroup

    group = DDPGGroup.create("ddpgkit/DictMirror-v0", DDPGConfig(**TINY), seeds=[0, 1])
    observations = [{"position": np.array([0.5, -0.5], np.float32), "flip": np.array([1, 0])},
                    {"position": np.array([0.1, 0.2], np.float32), "flip": np.array([0, 0])}]
    for m, own, a in zip(group.members, observations, group.act(observations)):
        np.testing.assert_allclose(a, m.act(own), atol=1e-6)  # the group flattens each member's dict
    agent = group.members[0]
    explored = agent.explore(observations[0])  # explore takes a dict too: μ(s) plus the noise, clipped
    assert explored.shape == (2,) and np.all(np.abs(explored) <= 1.0)
    assert not np.array_equal(explored, agent.act(observations[0]))
    ordered = ObservationLayout.of(spaces.Dict(OrderedDict([("z", spaces.Box(-1, 1, (1,))),
                                                            ("a", spaces.Box(-1, 1, ()))])))
    assert ordered.keys == (("z", 1), ("a", 1))  # an OrderedDict's order is kept; a scalar entry is one value


def test_an_eval_env_of_another_layout_and_a_malformed_observation_are_one_line_errors():
    agent = DDPG("ddpgkit/DictMirror-v0", DDPGConfig(**TINY), eval_env=Renamed())
    with pytest.raises(EnvError, match="the evaluation env's observations are flip:2, where:2, the training env's "
                                       "flip:2, position:2"):
        agent.evaluate(1)

    class Broken(DictMirrorEnv):
        def _obs(self):
            return {"position": self._s.copy()}  # no flip

    with pytest.raises(EnvError, match="does not fit its observation space: the observation has no key 'flip'"):
        DDPG(Broken(), DDPGConfig(**TINY)).learn()
    for space, fragment in ((spaces.Dict({0: spaces.Box(-1, 1, (2,))}), "key 0 is a int"),
                            (spaces.Dict({"e": spaces.Box(-1, 1, (0,))}), "an empty Box")):
        with pytest.raises(EnvError, match=fragment):
            ObservationLayout.of(space)
    layout = ObservationLayout.of(spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(-1, 1, (1,))}))
    with pytest.raises(ValueError, match=r"entry 'b' of a batch has shape \(3, 2\), expected \(3, 1\)"):
        layout.flatten_batch({"a": np.zeros((3, 2)), "b": np.zeros((3, 2))})
