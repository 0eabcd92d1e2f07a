import math

import torch

from ddpgkit.algo.noise import GaussianNoise, NoNoise, OrnsteinUhlenbeckNoise, make_noise


def test_gaussian_statistics_per_dimension():
    n = GaussianNoise(torch.tensor([0.1, 2.0]), seed=0)
    x = torch.stack([n.sample() for _ in range(20000)])
    assert x.shape == (20000, 2)
    torch.testing.assert_close(x.mean(0), torch.zeros(2), atol=0.03, rtol=0)
    torch.testing.assert_close(x.std(0), torch.tensor([0.1, 2.0]), rtol=0.03, atol=0)


def test_ou_stationary_std_autocorrelation_and_reset():
    sigma, theta, dt = 0.3, 0.15, 0.1
    n = OrnsteinUhlenbeckNoise(torch.tensor([sigma]), theta=theta, dt=dt, seed=1)
    xs = torch.stack([n.sample() for _ in range(200_000)])[:, 0]
    xs = xs[5000:]  # past the start at 0
    a = 1 - theta * dt
    stationary = sigma * math.sqrt(dt / (1 - a * a))
    assert abs(xs.std().item() / stationary - 1) < 0.1
    lag = 10
    corr = torch.corrcoef(torch.stack([xs[:-lag], xs[lag:]]))[0, 1].item()
    assert abs(corr - a**lag) < 0.05  # x_{t+k} ≈ (1 − θdt)^k x_t + noise
    n.reset()
    assert torch.equal(n.x, torch.zeros(1))
    first = n.sample()  # from 0: one step of σ√dt·ε
    assert first.abs().item() < 5 * sigma * math.sqrt(dt)


def test_seeded_and_state_restorable():
    a = OrnsteinUhlenbeckNoise(torch.ones(3), seed=5)
    b = OrnsteinUhlenbeckNoise(torch.ones(3), seed=5)
    for _ in range(10):
        assert torch.equal(a.sample(), b.sample())
    state = a.state_dict()
    expected = [a.sample() for _ in range(5)]
    c = OrnsteinUhlenbeckNoise(torch.ones(3), seed=0)
    c.load_state_dict(state)
    assert all(torch.equal(c.sample(), e) for e in expected)


def test_factory_and_no_noise():
    assert isinstance(make_noise("gaussian", torch.ones(2)), GaussianNoise)
    assert isinstance(make_noise("ou", torch.ones(2)), OrnsteinUhlenbeckNoise)
    z = make_noise("none", torch.ones(2))
    assert isinstance(z, NoNoise) and torch.equal(z.sample(), torch.zeros(2))
