"""Importing and using ddpgkit leaves the host process as it found it (issue 23, item 11): matplotlib's
backend, the global torch/numpy/Python generators, torch's thread count and denormal setting."""

import os
import random
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.runtime import denormals_flushed
from ddpgkit.training.loop import Callback

TINY = DDPGConfig(hidden=(16, 16), batch_size=32, learning_starts=50, total_steps=200, buffer_size=1000,
                  eval_interval=0, eval_episodes=1, checkpoint_interval=100)


class GlobalDraws(gym.Env):
    """An env that draws its start state from the process's global generators (as some users' envs do) and
    records every draw: (numpy, python, torch) per reset."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self):
        self.draws: list[tuple[float, float, float]] = []
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.draws.append((float(np.random.uniform()), random.random(), float(torch.rand(1))))
        self._t = 0
        return np.asarray(self.draws[-1], np.float32), {}

    def step(self, action):
        self._t += 1
        obs = np.asarray(self.draws[-1], np.float32)
        return obs, -float(np.square(action).sum()), False, self._t >= 10, {}


def _process_state():
    return torch.random.get_rng_state(), np.random.get_state(legacy=False), random.getstate()


def _same_state(a, b):
    (ta, na, pa), (tb, nb, pb) = a, b
    return (torch.equal(ta, tb) and pa == pb and na["state"]["pos"] == nb["state"]["pos"]
            and np.array_equal(na["state"]["key"], nb["state"]["key"]) and na["gauss"] == nb["gauss"])


def test_creating_loading_and_training_agents_leave_the_global_generators_alone(tmp_path):
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    host = _process_state()
    agent = DDPG("Pendulum-v1", TINY, seed=3)
    assert _same_state(host, _process_state())
    agent.learn(150)
    assert _same_state(host, _process_state())
    path = agent.save(tmp_path / "ckpt", training_state=True)
    DDPG.load(path)
    DDPG.load(path, training_state=False)
    assert _same_state(host, _process_state())


def test_the_initial_weights_are_those_of_the_seed_whatever_the_host_drew():
    torch.manual_seed(0)
    a = DDPG("Pendulum-v1", TINY, seed=5).model_tensors()
    torch.rand(1000)  # the host draws between two agents
    b = DDPG("Pendulum-v1", TINY, seed=5).model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_draws_from_the_global_generators_as_seeded_and_resumes_them(tmp_path):
    """The env's global draws are those of np.random.seed(seed) / random.seed(seed) (written out with
    generators of their own), the same whatever the host drew before, and continue exactly through a
    checkpoint while the host's generators are elsewhere."""
    seed = 7
    env = GlobalDraws()
    DDPG(env, TINY, seed=seed).learn(60)  # six episodes: six resets
    numpy_truth, python_truth = np.random.RandomState(seed), random.Random(seed)
    assert [d[0] for d in env.draws] == [numpy_truth.uniform() for _ in env.draws]
    assert [d[1] for d in env.draws] == [python_truth.random() for _ in env.draws]

    np.random.seed(999), random.seed(999), torch.manual_seed(999)
    cfg = TINY.replace(eval_interval=100)  # both evaluate at 100 (the evaluation env draws too), as learn(100) does
    straight = GlobalDraws()
    DDPG(straight, cfg, seed=seed).learn(200)

    first = GlobalDraws()
    agent = DDPG(first, cfg, seed=seed).learn(100)
    path = agent.save(tmp_path / "ckpt", training_state=True)
    np.random.uniform(size=50), random.random(), torch.rand(50)  # the host draws in between
    second = GlobalDraws()
    DDPG.load(path, env=second).learn(100)
    assert first.draws + second.draws == straight.draws


class _Probe(Callback):
    def __init__(self):
        self.seen = []

    def on_step(self, trainer):
        self.seen.append((torch.get_num_threads(), denormals_flushed()))


def test_learn_puts_back_torch_threads_and_denormal_setting():
    supported = torch.set_flush_denormal(False)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe = _Probe()
        DDPG("Pendulum-v1", TINY.replace(threads=1), seed=0).learn(60, callback=probe)
        assert set(probe.seen) == {(1, supported)}  # the run's settings while it trains
        assert torch.get_num_threads() == 2 and not denormals_flushed()  # the host's afterwards
    finally:
        torch.set_num_threads(before_threads)
        torch.set_flush_denormal(True)


def test_denormals_flushed_reads_the_setting():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        assert denormals_flushed()
        assert torch.tensor([1e-40]).item() == 0.0  # what flushing means, independently
        torch.set_flush_denormal(False)
        assert not denormals_flushed() and torch.tensor([1e-40]).item() > 0.0
    finally:
        torch.set_flush_denormal(True)


def test_importing_and_drawing_choose_no_matplotlib_backend(tmp_path):
    """A notebook's backend (here svg, as MPLBACKEND sets it) survives importing every ddpgkit module and
    drawing figures; ddpgkit never imports pyplot."""
    code = f"""
import pkgutil, importlib, sys
import ddpgkit
for m in pkgutil.walk_packages(ddpgkit.__path__, "ddpgkit."):
    if not m.name.endswith("__main__"):  # that one runs the CLI
        importlib.import_module(m.name)
from ddpgkit.analysis.plots import plot_activation, plot_loss
plot_activation({str(tmp_path / "a.png")!r}, "relu")
plot_loss({str(tmp_path / "l.png")!r}, [1.0, 0.5, 0.25])
import matplotlib
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"]
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
