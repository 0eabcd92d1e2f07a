"""The CUDA path: the same checks as on the CPU, on a GPU. Skipped where CUDA is not available
(CI has no GPU); run on a GPU machine with ``pytest tests/test_cuda.py``."""

import shutil

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, Callback, DDPGConfig
from ddpgkit.experiments.run import load_latest
from ddpgkit.training.callbacks import Checkpointer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SMALL = dict(hidden=(32, 32), total_steps=400, learning_starts=100, batch_size=32, buffer_size=1000,
             eval_interval=200, eval_episodes=2, device="cuda")


def batch_for(agent, seed=0):
    rows = torch.randn(64, agent.buffer.width, generator=torch.Generator().manual_seed(seed))
    rows[:, -2:] = (rows[:, -2:] > 1.0).float()
    return agent.buffer.split(rows.to(agent.device))


def grads(agent):
    return [p.grad.clone() for p in agent.learner._critic_params + agent.learner._actor_params]


def grads_after_one_update(**config):
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(64, 64), batch_size=64, device="cuda", **config), seed=1)
    agent.update(batch_for(agent))
    return grads(agent)


def test_everything_lives_on_the_gpu():
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=0)
    tensors = list(agent.model_tensors().values()) + [agent.buffer.data]
    assert all(t.device.type == "cuda" for t in tensors)
    agent.learn(150)
    state = agent.learner.critic_optimizer.state[agent.learner._critic_params[0]]
    assert state["exp_avg"].device.type == "cuda"
    assert agent.act(np.zeros(3, dtype=np.float32)).shape == (1,)


def test_handwritten_gradients_equal_autograd_on_cuda():
    out = {backward: grads_after_one_update(backward=backward) for backward in ("autograd", "handwritten")}
    for a, b in zip(out["autograd"], out["handwritten"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_same_seed_same_numbers_on_cuda():
    runs = [DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=3).learn() for _ in range(2)]
    a, b = (r.model_tensors() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_resume_is_bit_identical_on_cuda(tmp_path):
    cfg = DDPGConfig(**SMALL)
    full = DDPG("Pendulum-v1", cfg, seed=2).learn()
    interrupted = DDPG("Pendulum-v1", cfg, seed=2)

    class Stop(Callback):
        def on_step(self, trainer):
            return trainer.step < 250

    interrupted.learn(callback=[Checkpointer(tmp_path, 200, 3), Stop()])
    [resumed], [path], _ = load_latest(tmp_path)
    assert resumed.device.type == "cuda" and resumed.trainer.step == int(path.name)
    resumed.learn()
    a, b = full.model_tensors(), resumed.model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_on_cuda_loads_on_the_cpu(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL), seed=0).learn(200)
    agent.save(tmp_path / "ckpt")
    cpu = DDPG.load(tmp_path / "ckpt", device="cpu", training_state=False)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    np.testing.assert_allclose(agent.act(obs), cpu.act(obs), rtol=1e-5, atol=1e-6)


def test_bf16_on_cuda_matches_fp32_to_bf16_accuracy():
    out = {precision: grads_after_one_update(precision=precision) for precision in ("fp32", "bf16")}
    for a, b in zip(out["fp32"], out["bf16"]):
        assert (a - b).norm() <= 0.1 * a.norm() + 1e-6  # as on the CPU (tests/test_ddpg_math.py)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="needs a C++ compiler")
def test_compiled_update_on_cuda_matches_eager():
    """compile=True on CUDA replays the gradient functions as CUDA graphs (recorded after warm-up
    calls): several updates in a row must follow the eager ones, and the returned losses must
    survive the next replay."""
    agents = {c: DDPG("Pendulum-v1", DDPGConfig(hidden=(64, 64), batch_size=64, device="cuda", compile=c), seed=1)
              for c in (False, True)}
    kept = {False: [], True: []}
    for i in range(6):
        for compiled, agent in agents.items():
            kept[compiled].append(agent.update(batch_for(agent, seed=i)))
    for a, b in zip(kept[False], kept[True]):  # losses of every update, read after all of them ran
        torch.testing.assert_close(torch.stack(a), torch.stack(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(grads(agents[False]), grads(agents[True])):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    ta, tb = agents[False].model_tensors(), agents[True].model_tensors()
    assert all(torch.allclose(ta[k], tb[k], rtol=1e-4, atol=1e-6) for k in ta)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="needs a C++ compiler")
def test_compiled_training_on_cuda_runs_and_logs_finite_losses():
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL, compile=True), seed=0).learn()
    rows = [r for r in agent.trainer.history if r["critic_loss"] is not None]
    assert rows and all(np.isfinite([r["critic_loss"], r["actor_loss"], r["q_mean"]]).all() for r in rows)


def test_a_training_state_moves_cpu_to_cuda_to_cpu(tmp_path):
    """--device may change on resume: a run saved on the CPU continues on the GPU and back (the buffer samples
    with a CPU generator on every device, so its state is the same everywhere)."""
    cfg = DDPGConfig(**{**SMALL, "device": "cpu", "total_steps": 600})
    DDPG("Pendulum-v1", cfg, seed=5).learn(200).save(tmp_path / "a", training_state=True)
    on_gpu = DDPG.load(tmp_path / "a", device="cuda").learn(200)
    assert on_gpu.buffer.data.device.type == "cuda" and on_gpu.num_timesteps == 400
    on_gpu.save(tmp_path / "b", training_state=True)
    back = DDPG.load(tmp_path / "b", device="cpu").learn(200)
    assert back.buffer.data.device.type == "cpu" and back.num_timesteps == 600
    assert all(torch.isfinite(t).all() for t in back.model_tensors().values())
