from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpgkit.config.ddpg import DDPGConfig, field_help
from ddpgkit.config.presets import PRESETS
from ddpgkit.errors import ConfigError


def test_every_field_has_a_one_line_meaning():
    helps = field_help()
    assert set(helps) == {f.name for f in fields(DDPGConfig)}
    assert all(h and "\n" not in h for h in helps.values())


def test_defaults_are_the_chapters_networks():
    c = DDPGConfig()
    assert c.hidden == (256, 256) and c.activation == "relu" and c.actor_lr == 1e-3


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"actor_lr": 0.0}, "actor_lr must be > 0"),
        ({"critic_lr": -1e-3}, "critic_lr must be > 0"),
        ({"tau": 0.0}, r"tau must be in \(0, 1\]"),
        ({"tau": 1.5}, r"tau must be in \(0, 1\]"),
        ({"gamma": -0.1}, r"gamma must be in \[0, 1\]"),
        ({"gamma": 1.01}, r"gamma must be in \[0, 1\]"),
        ({"batch_size": 512, "buffer_size": 100}, "batch_size must not exceed buffer_size"),
        ({"learning_starts": 200, "total_steps": 100}, "learning_starts must be below total_steps"),
        ({"noise": "pink"}, "noise must be one of"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"device": "tpu"}, "device must be one of"),
        ({"hidden": (64, 0)}, "hidden sizes must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"gamma": "high"}, "gamma must be a number"),
        ({"gamma": float("nan")}, "gamma must be finite"),
        ({"hidden": "256,256"}, "hidden must be a list of integers"),
        ({"compile": True, "backward": "autograd"}, "backward must be handwritten with compile = true"),
        ({"compile": "yes"}, "compile must be true or false"),
    ],
)
def test_invalid_values_are_named(changes, match):
    with pytest.raises(ConfigError, match=match):
        DDPGConfig(**changes)


def test_int_accepted_for_float_and_integral_float_for_int():
    c = DDPGConfig(gamma=1, buffer_size=1e6)
    assert isinstance(c.gamma, float) and c.buffer_size == 1_000_000 and isinstance(c.buffer_size, int)


def test_toml_round_trip(tmp_path):
    c = DDPGConfig.preset("mujoco", seed=3)
    p = c.save(tmp_path / "c.toml")
    assert DDPGConfig.load(p) == c
    text = p.read_text()
    assert "# discount factor γ, in [0, 1]" in text and "hidden = [400, 300]" in text


def test_toml_partial_file_over_a_base(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("gamma = 0.9\nhidden = [32]\n")
    c = DDPGConfig.load(p, DDPGConfig.preset("pendulum"))
    assert c.gamma == 0.9 and c.hidden == (32,) and c.total_steps == PRESETS["pendulum"]["total_steps"]


@pytest.mark.parametrize(
    "text,match",
    [
        ("gamm = 0.9\n", "unknown key 'gamm'; did you mean 'gamma'"),
        ("[ddpg]\nbatchsize = 3\n", "unknown key 'batchsize'; did you mean 'batch_size'"),
        ("gamma = 'x'\n", "gamma must be a number, got str"),
        ("hidden = 64\n", "hidden must be a list of integers"),
        ("gamma = \n", "invalid TOML"),
        ("tau = 2.0\n", "tau must be in"),
    ],
)
def test_bad_toml_names_the_key(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        DDPGConfig.load(p)
    assert "bad.toml" in str(e.value)


def test_presets():
    p = DDPGConfig.preset("pendulum")
    assert p.total_steps == 20_000
    m = DDPGConfig.preset("mujoco")
    assert (m.hidden, m.actor_lr, m.critic_lr, m.tau, m.batch_size, m.noise) == ((400, 300), 1e-4, 1e-3, 1e-3, 64, "ou")
    with pytest.raises(ConfigError, match="unknown preset 'atari'"):
        DDPGConfig.preset("atari")
    with pytest.raises(ConfigError, match="unknown key"):
        DDPGConfig().replace(learning_rate=1.0)


_floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False)
_values = st.one_of(st.integers(-10**9, 10**9), _floats, st.text(max_size=5), st.booleans(),
                    st.lists(st.integers(-5, 500), max_size=3), st.none())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in fields(DDPGConfig)] + ["bogus"]), _values, max_size=4))
def test_any_mapping_gives_a_valid_config_or_a_config_error(data):
    try:
        c = DDPGConfig.from_dict(data)
    except ConfigError:
        return
    # whatever was accepted satisfies every invariant and survives a TOML round trip
    assert 0 <= c.gamma <= 1 and 0 < c.tau <= 1 and c.batch_size <= c.buffer_size
    assert DDPGConfig.from_dict(c.to_dict()) == c


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_file_gives_a_config_or_a_config_error(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("cfg") / "c.toml"
    p.write_bytes(blob)
    try:
        DDPGConfig.load(p)
    except ConfigError:
        pass
