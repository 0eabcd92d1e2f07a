import torch

from ddpgkit.analysis.plots import plot_activation, plot_data, plot_fit, plot_function, plot_loss
from ddpgkit.nn import MLP
from ddpgkit.nn.fitting import fit, make_dataset

from tests.pngcheck import assert_png


def test_every_fit_figure_is_a_valid_png(tmp_path):
    data = make_dataset()
    result = fit(data, steps=20)
    paths = [
        plot_activation(tmp_path / "relu.png"),
        plot_function(tmp_path / "untrained.png", MLP(1, 1)),
        plot_data(tmp_path / "data.png", data),
        plot_fit(tmp_path / "fit.png", result.model, data),
        plot_loss(tmp_path / "loss.png", result.losses),
    ]
    for p in paths:
        assert_png(p)


def test_fit_figure_for_multi_dimensional_input(tmp_path):
    x = torch.rand(30, 2)
    from ddpgkit.nn.fitting import Dataset

    data = Dataset(x, x.sum(1, keepdim=True))
    assert_png(plot_fit(tmp_path / "sub" / "fit.png", MLP(2, 1, (8,)), data))
