"""The chapter's own code, written out as it stands in the textbook: the independent reference that
ddpgkit's MLP and fit are tested against."""

import torch
import torch.nn.functional as F
from torch import nn, optim


class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear0 = nn.Linear(1, 256)
        self.relu0 = nn.ReLU()
        self.linear1 = nn.Linear(256, 256)
        self.relu1 = nn.ReLU()
        self.linear2 = nn.Linear(256, 1)

    def forward(self, x):
        h0 = self.relu0(self.linear0(x))
        h1 = self.relu1(self.linear1(h0))
        return self.linear2(h1)


def chapter_loop(seed: int, steps: int) -> tuple[list[float], float]:
    """Network, 20 points of sin, MSE, Adam 1e-3, `steps` steps: (losses before each step, final loss)."""
    torch.manual_seed(seed)
    f = Network()
    x_t = torch.linspace(-torch.pi, torch.pi, 20)[..., None]
    y_t = torch.sin(x_t)
    optimizer = optim.Adam(f.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(f(x_t), y_t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, F.mse_loss(f(x_t), y_t).item()
