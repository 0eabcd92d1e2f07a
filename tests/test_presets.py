"""The literature's DDPGs by name: the critic that takes the action at its second hidden layer, actor
and target updates every N-th step, the presets' values, and `ddpgkit presets`."""

import math

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.config.presets import PRESET_SOURCES, PRESETS
from ddpgkit.errors import ConfigError
from ddpgkit.nn import Critic, count_parameters

from tests.clihelp import assert_one_line_error, run_cli


def test_critic_with_the_action_at_the_second_layer_is_the_papers_formula():
    torch.manual_seed(0)
    critic = Critic(3, 2, hidden=(5, 4), action_layer=1)
    s, a = torch.randn(7, 3), torch.randn(7, 2)
    (W1, b1), = [(m.weight, m.bias) for m in critic.obs_net.linears]
    (W2, b2), (W3, b3) = [(m.weight, m.bias) for m in critic.net.linears]
    h1 = torch.relu(s @ W1.T + b1)  # the observation alone
    h2 = torch.relu(torch.cat([h1, a], 1) @ W2.T + b2)  # the action joins here
    torch.testing.assert_close(critic(s, a), h2 @ W3.T + b3)
    assert critic(s, a).shape == (7, 1)
    assert count_parameters(critic) == (3 * 5 + 5) + ((5 + 2) * 4 + 4) + (4 + 1)
    with pytest.raises(ValueError, match="action_layer must be in"):
        Critic(3, 2, hidden=(5, 4), action_layer=2)


def test_hidden_layers_use_fan_in_init_and_the_last_layer_3e_3():
    """The paper's initialisation: uniform(±1/sqrt(fan-in)) (PyTorch's default for Linear) and ±3e-3 last."""
    agent = DDPG("Pendulum-v1", DDPGConfig.preset("lillicrap2015"), seed=0)
    for net in (agent.actor.net, agent.critic.obs_net, agent.critic.net):
        for i, lin in enumerate(net.linears):
            last = net is not agent.critic.obs_net and i == len(net.linears) - 1
            bound = 3e-3 if last else 1 / math.sqrt(lin.in_features)
            assert lin.weight.abs().max() <= bound and lin.bias.abs().max() <= bound
            assert lin.weight.abs().max() > 0.8 * bound  # spread over the interval


@pytest.mark.parametrize("backward", ["handwritten", "autograd"])
def test_policy_frequency_updates_actor_and_targets_every_nth_step(backward):
    agent = DDPG("ddpgkit/Mirror-v0", DDPGConfig(hidden=(16, 16), batch_size=8, policy_frequency=2,
                                                  backward=backward), seed=0)
    rows = torch.randn(8, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    batch = agent.buffer.split(rows)

    def snapshot():
        return {k: v.clone() for k, v in agent.model_tensors().items()}

    changed = []
    for _ in range(4):
        before = snapshot()
        agent.update(batch)
        after = snapshot()
        changed.append({net: any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + "."))
                        for net in ("critic", "actor", "actor_target", "critic_target")})
    assert [c["critic"] for c in changed] == [True, True, True, True]
    assert [c["actor"] for c in changed] == [True, False, True, False]
    assert [c["actor_target"] and c["critic_target"] for c in changed] == [True, False, True, False]


def test_the_papers_ddpg_trains_and_round_trips(tmp_path):
    cfg = DDPGConfig.preset("lillicrap2015", hidden=(32, 32), total_steps=300, buffer_size=1000, eval_episodes=2,
                            eval_interval=0)
    agent = DDPG("Pendulum-v1", cfg, seed=1).learn()
    assert agent.learner.num_updates > 0 and all(torch.isfinite(t).all() for t in agent.model_tensors().values())
    loaded = DDPG.load(agent.save(tmp_path / "c", training_state=True))
    assert all(torch.equal(loaded.model_tensors()[k], v) for k, v in agent.model_tensors().items())
    obs = np.zeros(3, dtype=np.float32)
    assert np.array_equal(loaded.act(obs), agent.act(obs))


def test_presets_hold_their_sources_values():
    lc = DDPGConfig.preset("lillicrap2015")
    assert (lc.hidden, lc.critic_action_layer, lc.critic_weight_decay, lc.final_layer_init) == \
        ((400, 300), 1, 1e-2, 3e-3)
    assert (lc.noise, lc.ou_theta, lc.noise_scale, lc.batch_size, lc.tau, lc.actor_lr, lc.critic_lr) == \
        ("ou", 0.15, 0.2, 64, 1e-3, 1e-4, 1e-3)
    fj = DDPGConfig.preset("fujimoto2018")
    assert (fj.hidden, fj.critic_action_layer, fj.actor_lr, fj.batch_size, fj.tau, fj.noise_scale) == \
        ((400, 300), 0, 1e-3, 100, 5e-3, 0.1)
    cr = DDPGConfig.preset("cleanrl")
    assert (cr.hidden, cr.actor_lr, cr.learning_starts, cr.policy_frequency) == ((256, 256), 3e-4, 25_000, 2)
    sb = DDPGConfig.preset("sb3")
    assert (sb.hidden, sb.actor_lr, sb.batch_size, sb.learning_starts, sb.tau) == ((400, 300), 1e-3, 256, 100, 5e-3)
    assert set(PRESET_SOURCES) == set(PRESETS)
    with pytest.raises(ConfigError, match="critic_action_layer must be in"):
        DDPGConfig(hidden=(64,), critic_action_layer=1)


def test_presets_command_marks_where_they_differ(capsys):
    r = run_cli(capsys, "presets", "fujimoto2018", "sb3")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    batch = next(line for line in lines if " batch_size " in line)
    assert batch.startswith("*") and "100" in batch and "256" in batch
    assert not any(" hidden " in line for line in lines)  # both 400-300: shown only with --all
    assert any(line.startswith("  hidden") for line in run_cli(capsys, "presets", "fujimoto2018", "sb3",
                                                                  "--all").out.splitlines())
    assert "fujimoto2018: Fujimoto et al. 2018" in r.out
    assert_one_line_error(run_cli(capsys, "presets", "ddpg2016"), "unknown preset 'ddpg2016'")


def test_train_with_the_papers_preset(tmp_path, capsys):
    r = run_cli(capsys, "train", "Pendulum-v1", "--preset", "lillicrap2015", "--steps", "300", "--hidden", "16,16",
                "--buffer-size", "1000", "--eval-episodes", "1", "--out", tmp_path / "run")
    assert r.code == 0, r.err
    assert DDPGConfig.load(tmp_path / "run" / "config.toml").critic_action_layer == 1
