"""``ddpgkit presets``: the named DDPGs side by side, with the rows where they differ marked."""

from __future__ import annotations

import typer

from ..config.ddpg import DDPGConfig
from ..config.presets import PRESET_SOURCES, PRESETS
from .app import UserError, app, out


def _show(v: object) -> str:
    if isinstance(v, tuple):
        return "-".join(map(str, v)) or "(none)"
    return str(v)


@app.command()
def presets(
    names: list[str] = typer.Argument(None, help="Presets to show [default: all but the 'mujoco' alias]."),
    all_fields: bool = typer.Option(False, "--all", help="Show the fields where the presets agree too."),
) -> None:
    """The named DDPGs side by side: every hyperparameter that differs between them (marked *), then
    where each preset's values come from. Use one with `ddpgkit train ENV --preset NAME`."""
    chosen = names or [n for n in PRESETS if n != "mujoco"]
    for n in chosen:
        if n not in PRESETS:
            raise UserError(f"unknown preset {n!r}; valid: {', '.join(PRESETS)}")
    configs = [DDPGConfig.preset(n) for n in chosen]
    rows = []
    for key in DDPGConfig().to_dict():
        values = [_show(getattr(c, key)) for c in configs]
        differ = len(set(values)) > 1
        if differ or all_fields:
            rows.append(("*" if differ else " ", key, values))
    width = max(len(k) for _, k, _ in rows) if rows else 10
    cols = [max(len(n), *(len(v[i]) for _, _, v in rows)) for i, n in enumerate(chosen)]
    out.print("  " + "field".ljust(width) + "  " + "  ".join(n.ljust(c) for n, c in zip(chosen, cols)), markup=False)
    for mark, key, values in rows:
        out.print(f"{mark} {key.ljust(width)}  " + "  ".join(v.ljust(c) for v, c in zip(values, cols)), markup=False)
    out.print("", markup=False)
    for n in chosen:
        out.print(f"{n}: {PRESET_SOURCES[n]}", markup=False)
