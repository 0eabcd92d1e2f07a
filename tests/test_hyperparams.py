"""Hyperparameters by env id: which base a run starts from, and that every run records it."""

import json
import tomllib

import gymnasium as gym
import pytest

from ddpgkit import DDPG, DDPGConfig, run_experiment
from ddpgkit.config.hyperparams import ENV_HYPERPARAMS, GENERAL_SOURCE, defaults_for
from ddpgkit.config.presets import PRESETS
from ddpgkit.errors import ConfigError
from ddpgkit.experiments.sweep import SweepSpec
from ddpgkit.storage.rundir import read_origin

from tests.clihelp import assert_one_line_error, run_cli

TINY = ["--hidden", "8", "--batch-size", "16", "--buffer-size", "500", "--eval-episodes", "1"]


def test_the_table_covers_the_mujoco_and_box2d_tasks_and_every_entry_is_a_registered_env():
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "InvertedPendulum-v5",
                   "InvertedDoublePendulum-v5", "Reacher-v5", "Swimmer-v5", "LunarLanderContinuous-v3",
                   "BipedalWalker-v3", "Pendulum-v1"):
        assert env_id in ENV_HYPERPARAMS
    for env_id, entry in ENV_HYPERPARAMS.items():
        gym.spec(env_id)  # raises for an id Gymnasium does not know
        assert entry.source.strip()
        assert set(entry.values) <= set(DDPGConfig().to_dict())
        DDPGConfig(**entry.values)  # valid


def test_preset_then_table_entry_then_general_defaults():
    d = defaults_for("HalfCheetah-v5")
    assert d.name == "table:HalfCheetah-v5" and d.source == ENV_HYPERPARAMS["HalfCheetah-v5"].source
    # the entry's values over the general defaults, the rest untouched
    assert d.config == DDPGConfig().replace(total_steps=1_000_000, learning_starts=10_000)
    assert defaults_for("Pendulum-v1").config == DDPGConfig.preset("pendulum")
    p = defaults_for("HalfCheetah-v5", preset="cleanrl")
    assert (p.name, p.config) == ("preset:cleanrl", DDPGConfig.preset("cleanrl"))
    g = defaults_for("MountainCarContinuous-v0")
    assert (g.name, g.config, g.source) == ("general", DDPGConfig(), GENERAL_SOURCE)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        defaults_for("Pendulum-v1", preset="nope")


def test_general_defaults_are_the_ones_the_table_names():
    c = DDPGConfig()
    assert (c.hidden, c.final_layer_init, c.learning_starts, c.batch_size, c.tau, c.noise, c.noise_scale) == \
        ((256, 256), 0.0, 1000, 256, 0.005, "gaussian", 0.1)


def test_the_agent_without_a_config_uses_the_envs_entry():
    agent = DDPG("Pendulum-v1")
    assert agent.config == DDPGConfig.preset("pendulum")
    assert agent.actor.net.linear1.out_features == PRESETS["pendulum"]["hidden"][0]
    assert DDPG(gym.make("Pendulum-v1")).config == DDPGConfig.preset("pendulum")  # an env object: its spec's id
    assert DDPG("ddpgkit/Mirror-v0").config == DDPGConfig()  # no entry: the general defaults


def test_train_records_the_table_entry_in_config_toml_and_summary(tmp_path, capsys):
    run = tmp_path / "run"
    r = run_cli(capsys, "train", "Pendulum-v1", "--steps", "300", "--eval-interval", "0", *TINY, "--out", run)
    assert r.code == 0, r.err
    assert "hyperparameters: table:Pendulum-v1" in r.out
    data = tomllib.loads((run / "config.toml").read_text())
    note = "learning_starts 500 would leave no step to learn in a run of 300: learning starts at step 30"
    assert f"note: {note}" in r.out  # the entry's warm-up adapted to --steps 300, said and recorded in one wording
    assert data["origin"] == {"defaults": "table:Pendulum-v1", "source": ENV_HYPERPARAMS["Pendulum-v1"].source,
                              "adapted": f"{note} (a tenth of the run; --learning-starts sets it)"}
    assert data["ddpg"]["gamma"] == PRESETS["pendulum"]["gamma"]  # from the entry; --hidden from the flag
    assert data["ddpg"]["hidden"] == [8]
    assert DDPGConfig.load(run / "config.toml").hidden == (8,)  # the [origin] table does not disturb reading
    assert json.loads((run / "summary.json").read_text())["defaults"] == "table:Pendulum-v1"
    # resuming keeps the record
    r = run_cli(capsys, "resume", run, "--steps", "400")
    assert r.code == 0, r.err
    assert read_origin(run)["defaults"] == "table:Pendulum-v1"


def test_a_preset_wins_over_the_table_and_an_unknown_env_gets_the_general_defaults(tmp_path, capsys):
    r = run_cli(capsys, "train", "Pendulum-v1", "--preset", "sb3", "--steps", "200", "--eval-interval", "0", *TINY,
                "--out", tmp_path / "a")
    assert r.code == 0, r.err
    assert read_origin(tmp_path / "a") == {"defaults": "preset:sb3", "source": "Stable-Baselines3 2.9 DDPG defaults "
                                           "(400-300, Adam 1e-3, batch 256, τ 5e-3, 100 random steps) with the zoo's "
                                           "Gaussian 0.1 noise"}
    r = run_cli(capsys, "train", "ddpgkit/Mirror-v0", "--steps", "1200", "--eval-interval", "0", *TINY,
                "--out", tmp_path / "b")
    assert r.code == 0, r.err
    assert read_origin(tmp_path / "b")["defaults"] == "general"
    assert DDPGConfig.load(tmp_path / "b" / "config.toml").learning_starts == 1000  # the general warm-up


def test_a_library_run_with_its_own_config_says_so(tmp_path):
    cfg = DDPGConfig(total_steps=200, learning_starts=50, hidden=(8,), batch_size=16, eval_interval=0,
                     eval_episodes=1)
    [result] = run_experiment("ddpgkit/Mirror-v0", cfg, tmp_path / "r")
    assert read_origin(result.run_dir)["defaults"] == "given"
    assert result.summary["defaults"] == "given"


def test_sweep_trials_start_from_each_envs_entry(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text('envs = ["Pendulum-v1", "ddpgkit/Mirror-v0"]\nseeds = [0]\n[config]\ntotal_steps = 3000\n')
    pend, mirror = SweepSpec.load(spec_file).trials(tmp_path / "out")
    assert pend.config == DDPGConfig.preset("pendulum", total_steps=3000)
    assert pend.origin["defaults"] == "table:Pendulum-v1"
    assert mirror.config == DDPGConfig(total_steps=3000) and mirror.origin["defaults"] == "general"


def test_hyperparams_command(capsys):
    r = run_cli(capsys, "hyperparams", "HalfCheetah-v5")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "HalfCheetah-v5: total_steps=1000000, learning_starts=10000"
    assert ENV_HYPERPARAMS["HalfCheetah-v5"].source in r.out
    r = run_cli(capsys, "hyperparams")
    assert r.code == 0 and all(f"{env_id}:" in r.out for env_id in ENV_HYPERPARAMS) and GENERAL_SOURCE in r.out
    assert_one_line_error(run_cli(capsys, "hyperparams", "Foo-v1"), "no table entry for 'Foo-v1'")
