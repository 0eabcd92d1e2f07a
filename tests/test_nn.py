import pytest
import torch
from torch import nn

from ddpgkit.nn import ACTIVATIONS, MLP, Actor, Critic, activation, count_parameters
from ddpgkit.nn.backward import backward, forward_with_cache, set_grads

from tests.chapter import Network


def test_print_shows_the_chapters_network():
    text = str(MLP(1, 1))
    expected = [
        "(linear0): Linear(in_features=1, out_features=256, bias=True)",
        "(relu0): ReLU()",
        "(linear1): Linear(in_features=256, out_features=256, bias=True)",
        "(relu1): ReLU()",
        "(linear2): Linear(in_features=256, out_features=1, bias=True)",
    ]
    lines = [line.strip() for line in text.splitlines()[1:-1]]
    assert lines == expected


def test_forward_is_the_layer_formula_repeated():
    torch.manual_seed(0)
    f = MLP(3, 2, hidden=(5, 4), activation="tanh")
    x = torch.randn(7, 3)
    (W0, b0), (W1, b1), (W2, b2) = [(m.weight, m.bias) for m in f.linears]
    h0 = torch.tanh(x @ W0.T + b0)  # y = g(Wx + b)
    h1 = torch.tanh(h0 @ W1.T + b1)
    y = h1 @ W2.T + b2
    torch.testing.assert_close(f(x), y)
    assert f(x).shape == (7, 2)


def test_same_seed_same_weights_as_the_chapter_network():
    torch.manual_seed(3)
    ref = Network()
    torch.manual_seed(3)
    f = MLP(1, 1)
    x = torch.linspace(-3, 3, 11)[:, None]
    torch.testing.assert_close(f(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_by_name(name):
    x = torch.linspace(-2, 2, 9)
    reference = {
        "relu": torch.clamp(x, min=0),
        "tanh": (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
        "elu": torch.where(x > 0, x, torch.exp(x) - 1),
        "leaky_relu": torch.where(x > 0, x, 0.01 * x),
        "silu": x / (1 + torch.exp(-x)),
        "identity": x,
    }[name]
    torch.testing.assert_close(activation(name)(x), reference)
    assert isinstance(MLP(2, 1, (4,), activation=name)[1], ACTIVATIONS[name])


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_written_out_forward_equals_the_modules_while_stock(name):
    """The written-out pass (DDPG's default update) reads weights and activation names; while the MLP is as
    built (is_stock) it computes exactly what calling its modules computes."""
    torch.manual_seed(0)
    f = MLP(3, 2, hidden=(8, 8), activation=name, output_activation="tanh")
    x = torch.randn(5, 3)
    assert f.is_stock()
    with torch.no_grad():
        assert torch.equal(forward_with_cache(f, x.clone())[0], f(x))


def test_a_hook_on_relu0_sees_the_first_hidden_layer():
    """forward calls the named modules, as the chapter's Network does: a hook on relu0 receives h0."""
    torch.manual_seed(0)
    f = MLP(1, 1)
    x = torch.linspace(-3, 3, 7)[:, None]
    seen = []
    handle = f.relu0.register_forward_hook(lambda module, inputs, output: seen.append(output.detach()))
    assert not f.is_stock()
    f(x)
    handle.remove()
    assert f.is_stock()
    h0 = torch.clamp(x @ f.linear0.weight.T + f.linear0.bias, min=0)  # h0 = ReLU(W0 x + b0)
    assert len(seen) == 1 and torch.equal(seen[0], h0.detach())


def test_swapping_a_layer_changes_the_network():
    torch.manual_seed(0)
    f = MLP(1, 1, hidden=(4, 4))
    x = torch.linspace(-3, 3, 7)[:, None]
    f.relu0 = nn.Tanh()  # as a learner tries another g in the first hidden layer
    (W0, b0), (W1, b1), (W2, b2) = [(m.weight, m.bias) for m in f.linears]
    y = torch.relu(torch.tanh(x @ W0.T + b0) @ W1.T + b1) @ W2.T + b2
    torch.testing.assert_close(f(x), y)
    assert not f.is_stock()
    f.relu0 = nn.ReLU()
    assert f.is_stock()
    f.linear1 = nn.Linear(4, 4)  # a new layer of the same size: the affine layers are looked up again
    assert f.linears[1] is f.linear1 and f.is_stock()
    f.linear1 = nn.Linear(4, 5)
    assert not f.is_stock()
    del f.linear1  # a layer removed: not the network as built either
    assert len(f.linears) == 2 and not f.is_stock()


def test_the_written_out_update_refuses_a_changed_network_and_autograd_trains_it():
    from dataclasses import replace

    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.algo.learner import Learner
    from ddpgkit.data.buffer import Batch

    config = DDPGConfig(hidden=(8, 8))
    agent = DDPG("Pendulum-v1", config, seed=0)
    agent.actor.net.relu0 = nn.Tanh()
    with pytest.raises(ValueError, match="actor.*replaced or carries a hook.*backward='autograd'"):
        Learner(agent.learner.nets, config)
    learner = Learner(agent.learner.nets, replace(config, backward="autograd"))
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(16, 3, generator=g), torch.rand(16, 1, generator=g) * 4 - 2,
                  torch.randn(16, 1, generator=g), torch.randn(16, 3, generator=g), torch.zeros(16, 1),
                  torch.zeros(16, 1))
    before = agent.actor.net.linear0.weight.clone()
    learner.update(batch)
    assert not torch.equal(before, agent.actor.net.linear0.weight)


def test_a_layer_changed_after_the_agent_was_made_is_refused_where_training_starts():
    from ddpgkit import DDPG, DDPGConfig

    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(8, 8), learning_starts=10, batch_size=8), seed=0)
    agent.learn(20)  # trains as built
    handle = agent.critic.net.relu1.register_forward_hook(lambda module, inputs, output: None)
    with pytest.raises(ValueError, match="critic: a layer was replaced or carries a hook"):
        agent.learn(20)
    batch = agent.buffer.sample(8)
    with pytest.raises(ValueError, match="critic: a layer was replaced or carries a hook"):
        agent.update(batch)
    handle.remove()
    agent.learn(20)  # as built again
    assert agent.num_timesteps == 40


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*relu, tanh, elu, leaky_relu, silu, identity"):
        MLP(1, 1, activation="gelu")


def test_count_parameters_matches_formula():
    # (1*256 + 256) + (256*256 + 256) + (256*1 + 1)
    assert count_parameters(MLP(1, 1)) == 66_561
    f = MLP(4, 3, hidden=(8,))
    assert count_parameters(f) == 4 * 8 + 8 + 8 * 3 + 3
    for p in f.parameters():
        p.requires_grad_(False)
    assert count_parameters(f) == 0
    assert count_parameters(f, trainable_only=False) == 67


def test_final_layer_init_uniform_bound():
    torch.manual_seed(0)
    f = MLP(4, 2, hidden=(64, 64), final_layer_init=3e-3)
    last = f.linears[-1]
    assert last.weight.abs().max() <= 3e-3 and last.bias.abs().max() <= 3e-3
    assert last.weight.abs().max() > 1e-3  # spread over the interval, not zero
    default = MLP(4, 2, hidden=(64, 64)).linears[-1]
    assert default.weight.abs().max() > 3e-3  # PyTorch's default: uniform(±1/sqrt(64))


def test_empty_hidden_is_linear_and_bad_sizes_raise():
    f = MLP(3, 2, hidden=())
    assert [type(m) for m in f] == [nn.Linear]
    with pytest.raises(ValueError, match="positive"):
        MLP(3, 2, hidden=(0,))


def test_actor_scales_tanh_to_the_bounds():
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actor = Actor(3, low, high, hidden=(16,))
    with torch.no_grad():  # force the pre-tanh output to ±inf-like values
        last = actor.net.linears[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([50.0, -50.0]))
    a = actor(torch.zeros(5, 3))
    torch.testing.assert_close(a, torch.tensor([[2.0, 0.0]] * 5))
    with torch.no_grad():
        last.bias.zero_()
    torch.testing.assert_close(actor(torch.zeros(1, 3)), torch.tensor([[0.0, 0.5]]))  # the middle
    assert set(dict(actor.named_buffers())) == {"action_scale", "action_bias"}


def test_actor_rejects_bad_bounds():
    with pytest.raises(ValueError, match="finite"):
        Actor(2, [-float("inf")], [1.0])
    with pytest.raises(ValueError, match="high > low"):
        Actor(2, [1.0], [1.0])


def test_critic_concatenates_state_and_action():
    torch.manual_seed(0)
    critic = Critic(3, 2, hidden=(8,))
    obs, act = torch.randn(4, 3), torch.randn(4, 2)
    q = critic(obs, act)
    assert q.shape == (4, 1)
    torch.testing.assert_close(q, critic.net(torch.cat([obs, act], 1)))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("out_act", [None, "tanh"])
def test_handwritten_backward_equals_autograd_bit_for_bit(name, out_act):
    torch.manual_seed(0)
    f = MLP(4, 2, (32, 16), name, out_act)
    x = torch.randn(64, 4, requires_grad=True)
    grad_y = torch.randn(64, 2)
    y = f(x)
    y.backward(grad_y)
    reference = [p.grad.clone() for p in f.parameters()]
    for p in f.parameters():
        p.grad = None
    with torch.no_grad():
        y2, cache = forward_with_cache(f, x.detach())
        grads, dx = backward(f, cache, grad_y, input_grad=True)
        set_grads(f, grads)
    assert torch.equal(y.detach(), y2)
    assert all(torch.equal(r, p.grad) for r, p in zip(reference, f.parameters()))
    assert torch.equal(x.grad, dx)
    for p in f.parameters():
        p.grad = None
    with torch.no_grad():
        assert backward(f, cache, grad_y, weight_grads=False, input_grad=False) == (None, None)
    assert all(p.grad is None for p in f.parameters())
