"""``ddpgkit export`` (issue 27): the exported graph gives DDPG.predict's actions (1,000 observations from the space
and from a real episode, ≤ 1e-5) through onnxruntime and torch.jit.load, for flat and Dict observations, with and
without normalization, after bf16 training; its contract; `eval --policy`; bad input in one line; and the
twenty-line script that runs a policy with onnxruntime alone."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig, run_experiment
from ddpgkit.agents.export import ExportedPolicy, ExportError
from ddpgkit.envs.episodes import run_episode

from tests.clihelp import assert_one_line_error, run_cli
from tests.markers import needs_bf16

ort = pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "onnx_policy.py"
TOL = 1e-5  # absolute, on actions


def trained(env: str, **changes) -> DDPG:
    cfg = DDPGConfig(**{"hidden": (32, 32), "total_steps": 600, "learning_starts": 200, "batch_size": 32,
                        "eval_interval": 0, "eval_episodes": 1, "buffer_size": 5000, **changes})
    return DDPG(env, cfg, seed=3).learn()


def observations(agent: DDPG, n: int = 1000) -> np.ndarray:
    """n flat observations: half drawn from the observation space, half from a real episode of the policy."""
    space = agent.env.observation_space
    space.seed(0)
    drawn = [agent.flat_obs(space.sample()) for _ in range(n // 2)]
    episode = run_episode(agent.eval_env, agent.act, seed=5)
    real = [episode.observations[i % len(episode.observations)] for i in range(n - n // 2)]
    return np.stack([*drawn, *real]).astype(np.float32)  # (n, obs_dim)


@pytest.mark.parametrize("env,changes", [("Pendulum-v1", {}), ("Pendulum-v1", {"obs_norm": True}),
                                         ("ddpgkit/DictMirror-v0", {"obs_norm": True})],
                         ids=["pendulum", "pendulum-normalized", "dict-normalized"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_exported_policy_gives_predicts_actions(tmp_path, env, changes, fmt):
    agent = trained(env, **changes)
    path, meta = agent.export(tmp_path / f"policy.{'onnx' if fmt == 'onnx' else 'pt'}", fmt)
    obs = observations(agent)
    policy = ExportedPolicy(path)
    ours, ref = policy(obs), agent.predict(obs, deterministic=True)[0]
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= TOL
    for batch in (1, 7, 1024):  # any batch size
        assert policy(np.resize(obs, (batch, obs.shape[1]))).shape == (batch, agent.act_dim)
    if fmt == "onnx":  # onnxruntime alone, by the contract's input names
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        assert names == json.loads(meta.read_text())["inputs"] == [k for k, _ in agent.obs_layout.keys or [("obs", 0)]]


@needs_bf16
def test_a_bf16_trained_policy_exports_in_fp32(tmp_path):
    agent = trained("Pendulum-v1", precision="bf16")
    path, _ = agent.export(tmp_path / "p.onnx")
    obs = observations(agent)
    assert np.abs(ExportedPolicy(path)(obs) - agent.act(obs)).max() <= TOL


def test_the_contract_says_what_the_policy_expects_and_where_it_came_from(tmp_path, capsys):
    run = tmp_path / "run"
    r = run_cli(capsys, "train", "ddpgkit/DictMirror-v0", "--steps", "400", "--learning-starts", "100", "--hidden",
                "16,16", "--batch-size", "32", "--eval-interval", "200", "--eval-episodes", "2", "--obs-norm",
                "--out", run)
    assert r.code == 0, r.err
    r = run_cli(capsys, "export", run, "--checkpoint", "latest")
    assert r.code == 0, r.err
    contract = json.loads((run / "policy.json").read_text())
    ckpt = run / "checkpoints" / "400"
    assert contract["checkpoint"]["step"] == 400
    digest = hashlib.sha256((ckpt / "manifest.json").read_bytes()).hexdigest()
    assert contract["checkpoint"]["manifest_sha256"] == digest
    assert [(k["name"], k["size"], k["type"]) for k in contract["observation"]["keys"]] == \
        [("flip", 2, "MultiBinary"), ("position", 2, "Box")]
    assert contract["action"]["low"] == [-1.0, -1.0] and contract["env_id"] == "ddpgkit/DictMirror-v0"
    assert contract["versions"]["torch"] == torch.__version__ and contract["versions"]["onnx_opset"] == 18
    assert contract["normalized"] is True and contract["format"] == "onnx"
    r = run_cli(capsys, "export", run, "--checkpoint", "best", "--format", "torchscript", "--out", tmp_path / "b.pt")
    assert r.code == 0 and json.loads((tmp_path / "b.json").read_text())["checkpoint"]["path"].endswith("best")


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    run_experiment("Pendulum-v1", DDPGConfig.preset("pendulum", total_steps=2000, eval_interval=1000,
                                                    eval_episodes=2, obs_norm=True), [run], seeds=[0])
    return run


def test_eval_runs_the_exported_file_in_the_env(pendulum_run, capsys):
    r = run_cli(capsys, "export", pendulum_run, "--format", "torchscript")
    assert r.code == 0, r.err
    plain = run_cli(capsys, "eval", pendulum_run, "--episodes", "3")
    script = run_cli(capsys, "eval", pendulum_run, "--episodes", "3", "--policy", pendulum_run / "policy.pt")
    line = next(x for x in plain.out.splitlines() if x.startswith("return"))
    assert script.code == 0 and line in script.out  # TorchScript runs torch's own kernels: the same digits
    r = run_cli(capsys, "export", pendulum_run)
    assert r.code == 0, r.err
    onnx = run_cli(capsys, "eval", pendulum_run, "--episodes", "3", "--policy", pendulum_run / "policy.onnx")
    ours = float(next(x for x in onnx.out.splitlines() if x.startswith("return")).split()[1])
    # onnxruntime's products round differently in the last bits (|Δa| ≤ 1e-5); 200 steps of Pendulum carry that
    # into the returns' second decimal at most
    assert ours == pytest.approx(float(line.split()[1]), abs=0.5)


def test_a_script_with_onnxruntime_alone_balances_the_pendulum_as_eval_says(pendulum_run, capsys):
    assert run_cli(capsys, "export", pendulum_run).code == 0
    seed = 10_000  # the run's first evaluation episode (seed 0 + EVAL_SEED_OFFSET)
    probe = ("import runpy, sys; sys.argv = [sys.argv[1], sys.argv[2], sys.argv[3]]; "
             "runpy.run_path(sys.argv[0], run_name='__main__'); "
             "print('imported:', sorted({'torch', 'ddpgkit'} & {m.split('.')[0] for m in sys.modules}))")
    r = subprocess.run([sys.executable, "-c", probe, str(SCRIPT), str(pendulum_run / "policy.onnx"), str(seed)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ret, imported = r.stdout.splitlines()
    assert imported == "imported: []"  # neither torch nor ddpgkit
    agent = DDPG.load(sorted((pendulum_run / "checkpoints").glob("[0-9]*"))[-1], training_state=False)
    expected = agent.evaluate(1, seed)[0]
    assert float(ret.split()[1]) == pytest.approx(expected, abs=0.5)
    assert len(SCRIPT.read_text().splitlines()) <= 25
    guide = (ROOT / "docs" / "guide" / "export.md").read_text(encoding="utf-8")
    assert SCRIPT.read_text() in guide  # the user guide's export page shows the file as it is


def test_bad_input_is_one_line(pendulum_run, tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "export", tmp_path / "nope"), "no such run directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(capsys, "export", empty), "empty")
    assert_one_line_error(run_cli(capsys, "export", pendulum_run, "--format", "tflite"),
                          "--format must be one of onnx, torchscript")
    assert_one_line_error(run_cli(capsys, "export", pendulum_run, "--checkpoint", "77"), "no checkpoint at step 77")
    assert_one_line_error(run_cli(capsys, "export", pendulum_run, "--out", tmp_path / "no" / "p.onnx"),
                          "does not exist")
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(pendulum_run, broken)
    ckpt = sorted((broken / "checkpoints").glob("[0-9]*"))[-1]
    model = ckpt / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-8] + b"\0" * 8)  # one tensor's last bytes changed
    assert_one_line_error(run_cli(capsys, "export", broken, "--checkpoint", ckpt.name), str(ckpt))
    # a policy whose contract does not fit the env it is evaluated on
    car = tmp_path / "car"
    r = run_cli(capsys, "train", "MountainCarContinuous-v0", "--steps", "300", "--learning-starts", "100", "--hidden",
                "8,8", "--batch-size", "16", "--eval-interval", "0", "--eval-episodes", "1", "--out", car)
    assert r.code == 0, r.err
    assert run_cli(capsys, "export", pendulum_run, "--format", "torchscript").code == 0
    assert_one_line_error(run_cli(capsys, "eval", car, "--policy", pendulum_run / "policy.pt"),
                          "the policy takes observations obs:3, the env gives obs:2")


def test_without_the_export_extra_the_onnx_export_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed: its import fails
    agent = trained("Pendulum-v1")
    with pytest.raises(ExportError, match=r"pip install 'ddpgkit\[export\]'"):
        agent.export(tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists() and not (tmp_path / "p.json").exists()


def test_a_mujoco_policy_exports_with_unbounded_observations_and_evaluates_alike(tmp_path, capsys):
    """MuJoCo's observations are unbounded: the contract writes null for an infinite bound (JSON has no infinity),
    and `eval --policy` prints `eval`'s digits on InvertedPendulum-v5."""
    pytest.importorskip("mujoco")
    run = tmp_path / "ip"
    r = run_cli(capsys, "train", "InvertedPendulum-v5", "--steps", "1500", "--learning-starts", "500", "--hidden",
                "32,32", "--eval-interval", "0", "--eval-episodes", "5", "--out", run)
    assert r.code == 0, r.err
    assert run_cli(capsys, "export", run).code == 0
    contract = json.loads((run / "policy.json").read_text())
    assert contract["observation"]["keys"][0]["low"] == [None] * 4 and contract["action"]["low"] == [-3.0]
    plain = run_cli(capsys, "eval", run, "--episodes", "5")
    exported = run_cli(capsys, "eval", run, "--episodes", "5", "--policy", run / "policy.onnx")
    line = next(x for x in plain.out.splitlines() if x.startswith("return"))
    assert exported.code == 0 and line in exported.out
