import json
import os

import pytest

from tests.clihelp import assert_one_line_error, run_cli, run_subprocess
from tests.pngcheck import assert_png

FIGURES = ["activation.png", "data.png", "untrained.png", "fit.png", "loss.png"]


def test_fit_defaults_reproduce_the_chapter(tmp_path):
    # a real process, as a user runs it
    r = run_subprocess("fit", "--out", tmp_path / "fit")
    assert r.code == 0, r.err
    assert "(linear0): Linear(in_features=1, out_features=256, bias=True)" in r.out
    assert "(linear2): Linear(in_features=256, out_features=1, bias=True)" in r.out
    assert r.err == ""  # no progress bar when output is not a terminal
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["steps"] == 100 and metrics["seed"] == 0
    assert 0.3 < metrics["initial_loss"] < 0.7
    assert metrics["final_loss"] < 1e-3
    assert f"initial loss: {metrics['initial_loss']:.4f}" in r.out
    for name in FIGURES:
        assert_png(tmp_path / "fit" / name)


def test_same_seed_same_numbers_twice(tmp_path, capsys):
    for d in ("a", "b"):
        assert run_cli(capsys, "fit", "--steps", "30", "--seed", "5", "--out", tmp_path / d).code == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert (a["initial_loss"], a["final_loss"]) == (b["initial_loss"], b["final_loss"])


def test_flags_and_csv_data(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("x0,x1,y0\n" + "".join(f"{i / 10},{-i / 10},{i / 100}\n" for i in range(12)))
    r = run_cli(capsys, "fit", "--data", csv, "--steps", "50", "--hidden", "32", "--activation", "tanh",
                "--lr", "0.01", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    assert "(linear0): Linear(in_features=2, out_features=32" in r.out
    assert "(tanh0): Tanh()" in r.out
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["points"] == 12 and m["hidden"] == [32] and m["final_loss"] < m["initial_loss"]
    assert not (tmp_path / "o" / "untrained.png").exists()  # only drawn for 1-D input
    assert_png(tmp_path / "o" / "fit.png")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--target", "exp"], "unknown target 'exp'"),
        (["--activation", "gelu"], "unknown activation 'gelu'"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--steps", "-5"], "--steps must be a positive integer"),
        (["--points", "0"], "--points must be a positive integer"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--hidden", "256,x"], "--hidden must be comma-separated"),
        (["--hidden", "256,-1"], "--hidden sizes must be positive"),
        (["--lr-schedule", "step"], "unknown --lr-schedule 'step'"),
        (["--steps", "ten"], "Invalid value for '--steps'"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_flags_one_line(tmp_path, capsys, args, fragment):
    r = run_cli(capsys, "fit", *args, "--out", tmp_path / "o")
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "o" / "metrics.json").exists()


@pytest.mark.parametrize(
    "text,fragment",
    [("x0,y0\n1,\n", "line 2, column y0: missing"), ("x0,y0\n1,a\n", "non-numeric"), ("x0,y0\n", "no data rows")],
)
def test_bad_csv_one_line(tmp_path, capsys, text, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    assert_one_line_error(run_cli(capsys, "fit", "--data", p, "--out", tmp_path / "o"), "bad.csv", fragment)


def test_missing_csv_and_unwritable_out(tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "fit", "--data", tmp_path / "none.csv"), "none.csv", "cannot read")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli(capsys, "fit", "--out", blocker), "not a directory")
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert_one_line_error(run_cli(capsys, "fit", "--out", ro / "x"), "ermission")


def test_subprocess_error_has_no_traceback(tmp_path):
    r = run_subprocess("fit", "--hidden", "a", "--out", tmp_path)
    assert_one_line_error(r, "--hidden")
    assert r.code == 1


def test_help_explains_every_flag(capsys):
    r = run_cli(capsys, "fit", "--help")
    assert r.code == 0
    for flag in ["--target", "--points", "--steps", "--lr", "--hidden", "--activation", "--seed", "--data", "--out"]:
        assert flag in r.out
    top = run_cli(capsys, "--help")
    assert top.code == 0 and "fit" in top.out


def test_bare_command_shows_the_overview_and_missing_arguments_one_line(capsys):
    r = run_cli(capsys)
    assert r.code == 2 and "Commands" in r.out and "train" in r.out and "fit" in r.out
    assert_one_line_error(run_cli(capsys, "train"), "Missing argument")
    assert run_cli(capsys, "train").code == 2
    assert run_cli(capsys, "--version").out.startswith("ddpgkit ")
