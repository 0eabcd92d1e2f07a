"""What calling MLP's named modules costs (issue 28): ``MLP.forward`` runs ``linear0, relu0, linear1, ...`` as
the chapter's ``Network`` does, so hooks and swapped layers take effect. Timed against the same arithmetic
through functional calls (the forward before issue 28), on the networks DDPG runs forward outside its
written-out update: the actor acting on one observation, and actor and critic at batch 256 (evaluation, the
autograd update). Median and spread of repeated timings, one thread, side by side in one process.

    .venv/bin/python benchmarks/mlp_forward.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ddpgkit import MLP

from common import machine, set_threads, spread, table


def functional_forward(mlp: MLP, x: torch.Tensor) -> torch.Tensor:
    """The forward before issue 28: F.linear over the affine layers, g between them, without module calls."""
    g = {"relu": torch.relu, "tanh": torch.tanh}[mlp.activation_name]
    linears = mlp.linears
    for lin in linears[:-1]:
        x = g(F.linear(x, lin.weight, lin.bias))
    x = F.linear(x, linears[-1].weight, linears[-1].bias)
    return x if mlp.output_activation_name is None else torch.tanh(x)


def per_call_us(fn, x: torch.Tensor, calls: int) -> float:
    with torch.no_grad():
        for _ in range(50):
            fn(x)
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    set_threads(1)
    print(machine())
    torch.manual_seed(0)
    cases = [("actor 3-256-256-1 + tanh, batch 1 (acting)", MLP(3, 1, (256, 256), output_activation="tanh"), 1, 4000),
             ("actor 3-256-256-1 + tanh, batch 256", MLP(3, 1, (256, 256), output_activation="tanh"), 256, 1000),
             ("critic 4-256-256-1, batch 256", MLP(4, 1, (256, 256)), 256, 1000),
             ("actor 17-400-300-6 + tanh, batch 1", MLP(17, 6, (400, 300), output_activation="tanh"), 1, 4000)]
    rows = []
    for name, net, batch, calls in cases:
        x = torch.randn(batch, net.in_features)
        assert torch.equal(net(x), functional_forward(net, x))  # the same numbers, bit for bit
        modules, functional = [], []
        for _ in range(args.repeats):
            modules.append(per_call_us(net, x, calls))
            functional.append(per_call_us(lambda v, n=net: functional_forward(n, v), x, calls))
        ratios = [m / f for m, f in zip(modules, functional)]
        rows.append((name, spread(modules, "{:.1f}"), spread(functional, "{:.1f}"), spread(ratios, "{:.2f}")))
    print(table(("network", "named modules µs/call", "functional µs/call", "ratio"), rows))


if __name__ == "__main__":
    main()
