import json
import math

import pytest

from ddpgkit.config.ddpg import DDPGConfig
from ddpgkit.storage.rundir import read_metrics

from tests.clihelp import assert_one_line_error, run_cli, run_subprocess
from tests.pngcheck import assert_png

FAST = ["--steps", "400", "--learning-starts", "100", "--eval-interval", "200", "--eval-episodes", "2",
        "--hidden", "32,32", "--batch-size", "32", "--buffer-size", "1000"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "run"
    r = run_subprocess("train", "Pendulum-v1", "--preset", "pendulum", *FAST, "--seed", "4", "--out", d)
    assert r.code == 0, r.err
    assert r.err == ""  # no progress bar without a terminal
    assert "final evaluation:" in r.out
    return d


def test_run_directory_contents(run_dir):
    cfg = DDPGConfig.load(run_dir / "config.toml")
    assert cfg == DDPGConfig.preset("pendulum", total_steps=400, learning_starts=100, eval_interval=200,
                                    eval_episodes=2, hidden=(32, 32), batch_size=32, buffer_size=1000, seed=4)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [200, 200, 400, 400]  # episode end and evaluation at 200 and 400
    learned = [r for r in rows if r["critic_loss"] is not None]
    assert learned and all(math.isfinite(r["critic_loss"]) and math.isfinite(r["actor_loss"]) for r in learned)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 400 and summary["seed"] == 4 and summary["env_id"] == "Pendulum-v1"
    assert summary["final_eval_mean"] == rows[-1]["eval_mean"]
    assert (run_dir / summary["checkpoint"] / "manifest.json").is_file()
    assert_png(run_dir / "learning_curve.png")


def test_eval_agrees_with_summary(run_dir, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    r = run_cli(capsys, "eval", run_dir, "--episodes", "2")
    assert r.code == 0, r.err
    assert f"return: {summary['final_eval_mean']:.2f} ± {summary['final_eval_std']:.2f} over 2 episodes" in r.out


def test_eval_gif(run_dir, tmp_path, capsys):
    pytest.importorskip("pygame", reason="rendering needs the 'render' extra")
    r = run_cli(capsys, "eval", run_dir, "--episodes", "1", "--gif", tmp_path / "ep.gif")
    assert r.code == 0, r.err
    from PIL import Image

    img = Image.open(tmp_path / "ep.gif")
    assert img.format == "GIF" and img.n_frames == 201  # reset frame + 200 steps
    # the recorded episode is evaluation episode 0, so its return is that episode's return
    ret = float(r.out.split("return ")[-1].rstrip(")\n"))
    single = float(r.out.split("return: ")[1].split(" ±")[0])
    assert ret == pytest.approx(single, abs=0.05)


def test_plot_overlays_runs(run_dir, tmp_path, capsys):
    r = run_cli(capsys, "plot", run_dir, run_dir, "--out", tmp_path / "both.png")
    assert r.code == 0, r.err
    assert_png(tmp_path / "both.png")
    assert_png(tmp_path / "health_signals.png")


def test_plot_draws_the_health_signals_of_a_run(run_dir, tmp_path, capsys):
    rows = read_metrics(run_dir)
    learned = [r for r in rows if r["critic_loss"] is not None]
    for column in ("critic_grad_norm", "actor_grad_norm", "td_error_mean", "td_error_max", "q_max", "q_min",
                   "tanh_saturated", "action_at_bound", "noise_rms"):
        assert all(r[column] is not None and math.isfinite(r[column]) for r in learned), column
    r = run_cli(capsys, "plot", run_dir, "--out", tmp_path / "curve.png")
    assert r.code == 0, r.err
    assert_png(tmp_path / "curve.png")
    assert_png(tmp_path / "health.png")
    r = run_cli(capsys, "plot", run_dir, "--out", tmp_path / "health.png")
    assert_one_line_error(r, "health figure", "--no-health")


def test_existing_run_is_not_overwritten(run_dir, capsys):
    before = (run_dir / "summary.json").read_text()
    r = run_cli(capsys, "train", "Pendulum-v1", *FAST, "--out", run_dir)
    assert_one_line_error(r, "already holds a run", "--overwrite")
    assert (run_dir / "summary.json").read_text() == before


def test_config_file_and_flag_precedence(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("gamma = 0.9\ntau = 0.01\n")
    r = run_cli(capsys, "train", "ddpgkit/Mirror-v0", "--config", cfg, "--tau", "0.02", "--steps", "150",
                "--learning-starts", "50", "--batch-size", "16", "--hidden", "8", "--eval-episodes", "2",
                "--out", tmp_path / "run")
    assert r.code == 0, r.err
    saved = DDPGConfig.load(tmp_path / "run" / "config.toml")
    assert (saved.gamma, saved.tau, saved.total_steps) == (0.9, 0.02, 150)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["CartPole-v1"], ["CartPole-v1: DDPG needs a continuous Box action space"]),
        (["ddpgkit/Unbounded-v0"], ["bounded action space"]),
        (["Pendulum-v2"], ["unknown environment 'Pendulum-v2'", "Pendulum-v1"]),
        (["Pendulum-v1", "--tau", "0"], ["tau must be in (0, 1]"]),
        (["Pendulum-v1", "--gamma", "1.5"], ["gamma must be in [0, 1]"]),
        (["Pendulum-v1", "--actor-lr", "-1"], ["actor_lr must be > 0"]),
        (["Pendulum-v1", "--batch-size", "512", "--buffer-size", "100"], ["batch_size must not exceed"]),
        (["Pendulum-v1", "--learning-starts", "500", "--steps", "100"], ["learning_starts must be below"]),
        (["Pendulum-v1", "--preset", "atari"], ["unknown preset 'atari'"]),
        (["Pendulum-v1", "--noise", "pink"], ["noise must be one of"]),
        (["Pendulum-v1", "--hidden", "64,x"], ["--hidden must be comma-separated"]),
        (["Pendulum-v1", "--device", "cuda:0"], ["CUDA is not available"]),
    ],
)
def test_bad_train_inputs_one_line(tmp_path, capsys, args, fragments):
    import torch

    if "cuda:0" in args and torch.cuda.is_available():  # the error case does not exist on a CUDA machine
        args, fragments = ["Pendulum-v1", "--device", "tpu"], ["device must be one of"]
    r = run_cli(capsys, "train", *args, "--out", tmp_path / "run")
    assert_one_line_error(r, *fragments)
    assert not (tmp_path / "run" / "config.toml").exists()


@pytest.mark.parametrize(
    "text,fragments",
    [("learning_rate = 0.1\n", ["unknown key 'learning_rate'"]), ("gamma = 'x'\n", ["gamma must be a number"]),
     ("batch_size = [1]\n", ["batch_size must be an integer"]), ("= 3\n", ["invalid TOML"])],
)
def test_bad_config_file_one_line(tmp_path, capsys, text, fragments):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = run_cli(capsys, "train", "Pendulum-v1", "--config", cfg, "--out", tmp_path / "run")
    assert_one_line_error(r, "bad.toml", *fragments)


def test_non_finite_env_stops_with_step(tmp_path, capsys):
    r = run_cli(capsys, "train", "ddpgkit/NonFinite-v0", "--steps", "300", "--learning-starts", "10",
                "--batch-size", "8", "--hidden", "8", "--out", tmp_path / "run")
    assert_one_line_error(r, "non-finite observation at step 49")
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing written from a broken run


def test_eval_bad_inputs(tmp_path, capsys, run_dir):
    assert_one_line_error(run_cli(capsys, "eval", tmp_path / "nope"), "no such run directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(capsys, "eval", empty), "no checkpoints")
    assert_one_line_error(run_cli(capsys, "eval", run_dir, "--episodes", "0"), "--episodes must be >= 1")
    assert_one_line_error(run_cli(capsys, "eval", run_dir, "--gif", tmp_path / "x.mp4", "--episodes", "1"),
                          "--gif must name a .gif file")
    assert_one_line_error(run_cli(capsys, "plot", tmp_path / "nope"), "nope: missing")


def test_eval_refuses_corrupt_checkpoint(tmp_path, capsys, run_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    ckpt = next(p for p in (copy / "checkpoints").iterdir() if p.name.isdigit())
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    assert_one_line_error(run_cli(capsys, "eval", copy), "model.safetensors", "truncated")


def test_train_help_lists_every_config_field(capsys):
    from dataclasses import fields

    r = run_cli(capsys, "train", "--help")
    assert r.code == 0
    for f in fields(DDPGConfig):
        assert "--" + f.name.replace("_", "-") in r.out
    assert "--steps" in r.out and "--preset" in r.out and "--config" in r.out

