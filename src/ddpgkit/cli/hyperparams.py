"""``ddpgkit hyperparams``: the table of hyperparameters by env id, each entry with its source."""

from __future__ import annotations

import typer

from ..config.ddpg import DDPGConfig
from ..config.hyperparams import ENV_HYPERPARAMS, GENERAL_SOURCE, defaults_for
from .app import UserError, app, out


def _show(v: object) -> str:
    return "-".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


@app.command()
def hyperparams(
    env_ids: list[str] = typer.Argument(None, help="Env ids to show [default: every entry of the table]."),
) -> None:
    """The hyperparameters `ddpgkit train ENV_ID` starts from when no --preset is given: per env id,
    the values that differ from the general defaults and where they come from."""
    general = DDPGConfig().to_dict()
    for env_id in env_ids or list(ENV_HYPERPARAMS):
        if env_ids and env_id not in ENV_HYPERPARAMS:
            raise UserError(f"no table entry for {env_id!r} (it trains with the general defaults); entries: "
                            f"{', '.join(ENV_HYPERPARAMS)}")
        config = defaults_for(env_id).config.to_dict()
        changed = ", ".join(f"{k}={_show(v)}" for k, v in config.items() if v != general[k])
        out.print(f"{env_id}: {changed}", markup=False)
        out.print(f"    source: {ENV_HYPERPARAMS[env_id].source}", markup=False)
    if not env_ids:
        out.print("any other env id: the general defaults (`ddpgkit train --help`)", markup=False)
        out.print(f"    source: {GENERAL_SOURCE}", markup=False)
