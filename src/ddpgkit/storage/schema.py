"""The checkpoint format on one page: every file and key of a checkpoint, its shape and meaning, who writes it,
the format's version, and the one function that upgrades a checkpoint of an older version.

A checkpoint is a directory; :mod:`ddpgkit.storage.checkpoint` writes it atomically and verifies every file
(size and SHA-256) before parsing it, and nothing in it is ever unpickled::

    manifest.json          "format", "version" (:data:`VERSION`), the files and shared files with their size and
                           SHA-256, "meta" (the JSON keys below), its own checksum
    model.safetensors      the four networks (:data:`MODEL`)
    training.safetensors   the rest of the training state (:data:`TRAINING`; training checkpoints only)
    buffer chunks          the replay buffer's rows, ~4 MB each (:data:`CHUNK`): buffer_<k>.safetensors inside the
                           directory, or files shared by the checkpoints of a run in ../.chunks/, named
                           buffer-<k>-w<writes>-<hash>.safetensors, listed under the manifest's "shared"
    history chunks         the run's metrics rows so far, 4096 a file (:data:`HISTORY_CHUNK`), as the buffer's:
                           history_<k>.safetensors, or shared history-<k>-w<rows>-<hash>.safetensors

Reading: :func:`upgrade` turns the files and meta of any supported version into this version's, then
:func:`check_meta` refuses what this page does not describe; the loaders (``DDPG.load``,
:func:`ddpgkit.training.state.restore_training_state`) then check every value's type, shape and range.
Nothing else reads an older format: a loader never looks for a key "absent in older checkpoints".

Versions:

1. to d91091f (issue 22): optimiser state under ``actor_optimizer.*``/``critic_optimizer.*``, the health record
   as ``trainer.health``, the training state's own ``version`` in its JSON; checkpoints of its early days may
   lack the health record and the noise count (before the health signals), the buffer's ``added`` and
   ``chunk_rows`` and its chunk files (before chunks: its rows as ``buffer.data`` in training.safetensors)
   and the manifest's ``shared``. ``tests/fixtures/checkpoints-v1`` holds run directories of it.
2. the learner's state under ``learner.``: its optimisers, its health record, and ``learner.last_actor_loss``
   (what an update without an actor step reports, with ``policy_frequency`` > 1; version 1 restored 0, so a
   run resumed between two actor steps logged another actor loss than the uninterrupted run); one version
   number for the whole checkpoint; ``buffer.generator`` a CPU generator's state on every device (version 1
   saved a CUDA buffer's CUDA generator, 16 bytes, which no CPU run could restore: its upgrade seeds a CPU
   generator from that state, so such a run resumes anywhere, though not bit for bit); the metrics history
   out of the manifest into chunk files (version 1 carried every row in the manifest, ~0.85 kB a row: past
   ~79k rows the manifest outgrew the reader's 64 MiB cap, and a long run wrote checkpoints it could not load).
   Issue 24 added keys that only the runs asking for them write, so every earlier version-2 checkpoint reads
   as it did: TD3's second critic (``critic2.*``, ``critic2_target.*``; its Adam state follows the first
   critic's as ``learner.critic_optimizer.{p}`` with p past the first critic's parameters), the smoothing
   noise's generator, and the config keys ``n_critics``, ``target_noise``, ``target_noise_clip``, ``n_step``
   (absent: their defaults, DDPG's).
3. ``observation`` in the meta (issue 25): the observation layout, obs_dim for a flat Box or a Dict's keys and
   sizes in order (:class:`ddpgkit.envs.spaces.ObservationLayout`); version 2 had flat Boxes only, and its
   upgrade records obs_dim.

Shapes: ``units[i]`` and ``inputs[i]`` are layer i's output and input sizes (``config.hidden``, ``obs_dim``,
``act_dim``; the critic's first layer takes obs_dim + act_dim, or with ``critic_action_layer`` > 0 its
``obs_net`` the observation and its ``net`` hidden[k−1] + act_dim); ``param[p]`` is the shape of the p-th
parameter of the actor or the critic (``parameters()`` order: weight, bias, layer by layer); ``width`` is a
buffer row's, 2·obs_dim + act_dim + 3; G is a CPU generator's state size (5,056 bytes in torch 2.13).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import CheckpointError
from .manifest import VERSION

__all__ = ["CHUNK", "HISTORY_CHUNK", "MODEL", "META", "TRAINING", "VERSION", "Key", "check_meta", "key_pattern",
           "upgrade"]


@dataclass(frozen=True)
class Key:
    """One entry of the format: a tensor's name (or a JSON key's dotted path), with ``{i}`` for a layer index,
    ``{p}`` for a parameter index, ``{k}`` for a chunk index; its shape and dtype; what it means; the code that
    writes it."""

    name: str
    shape: str
    dtype: str
    meaning: str
    writer: str


def _net(prefix: str, what: str, writer: str) -> tuple[Key, ...]:
    return (Key(f"{prefix}.linear{{i}}.weight", "(units[i], inputs[i])", "float32", f"{what}: W_i of layer i", writer),
            Key(f"{prefix}.linear{{i}}.bias", "(units[i],)", "float32", f"{what}: b_i of layer i", writer))


_MODEL_WRITER = "DDPG.model_tensors (the modules' state_dict)"

#: The keys of model.safetensors, the four networks (the targets' are the online networks' with ``_target``).
MODEL: tuple[Key, ...] = (
    *_net("actor.net", "the actor μ_θ(s) = scale · tanh(f_θ(s)) + bias, its MLP f_θ", _MODEL_WRITER),
    Key("actor.action_scale", "(act_dim,)", "float32", "scale = (high − low) / 2 of the action bounds", _MODEL_WRITER),
    Key("actor.action_bias", "(act_dim,)", "float32", "bias = (high + low) / 2 of the action bounds", _MODEL_WRITER),
    *_net("critic.obs_net", "the critic's layers the observation passes alone (critic_action_layer > 0 only)",
          _MODEL_WRITER),
    *_net("critic.net", "the critic Q_φ(s, a)'s MLP, one linear output", _MODEL_WRITER),
    *_net("actor_target.net", "the target actor μ_θ'", _MODEL_WRITER),
    Key("actor_target.action_scale", "(act_dim,)", "float32", "as actor.action_scale", _MODEL_WRITER),
    Key("actor_target.action_bias", "(act_dim,)", "float32", "as actor.action_bias", _MODEL_WRITER),
    *_net("critic_target.obs_net", "the target critic Q_φ' (critic_action_layer > 0 only)", _MODEL_WRITER),
    *_net("critic_target.net", "the target critic Q_φ'", _MODEL_WRITER),
    *_net("critic2.obs_net", "TD3's second critic Q_φ2 (n_critics = 2 and critic_action_layer > 0 only)",
          _MODEL_WRITER),
    *_net("critic2.net", "TD3's second critic Q_φ2 (n_critics = 2 only)", _MODEL_WRITER),
    *_net("critic2_target.obs_net", "its target Q_φ2' (n_critics = 2 and critic_action_layer > 0 only)",
          _MODEL_WRITER),
    *_net("critic2_target.net", "its target Q_φ2' (n_critics = 2 only)", _MODEL_WRITER),
    Key("obs_norm.count", "()", "float64", "observations the normalizer has seen (obs_norm only)", _MODEL_WRITER),
    Key("obs_norm.mean", "(obs_dim,)", "float64", "their running mean μ (obs_norm only)", _MODEL_WRITER),
    Key("obs_norm.m2", "(obs_dim,)", "float64", "their sum of squared deviations from μ: σ² = m2 / count (obs_norm "
        "only)", _MODEL_WRITER),
)

_LEARNER = "training.state.learner_state"
#: The keys of training.safetensors, everything beyond the networks that continues training exactly.
TRAINING: tuple[Key, ...] = (
    Key("learner.actor_optimizer.{p}.step", "()", "float32", "Adam's step count for the actor's parameter p",
        _LEARNER + " (torch.optim.Adam.state_dict)"),
    Key("learner.actor_optimizer.{p}.exp_avg", "param[p]", "float32", "Adam's first moment m of parameter p",
        _LEARNER),
    Key("learner.actor_optimizer.{p}.exp_avg_sq", "param[p]", "float32", "Adam's second moment v of parameter p",
        _LEARNER),
    Key("learner.critic_optimizer.{p}.step", "()", "float32", "Adam's step count for the critic's parameter p",
        _LEARNER + " (torch.optim.Adam.state_dict)"),
    Key("learner.critic_optimizer.{p}.exp_avg", "param[p]", "float32", "Adam's first moment m of parameter p",
        _LEARNER),
    Key("learner.critic_optimizer.{p}.exp_avg_sq", "param[p]", "float32", "Adam's second moment v of parameter p",
        _LEARNER),
    Key("learner.health", "(9,)", "float32", "the update's health signals since the last metrics row: counts, "
        "sums and maxima laid out as algo/health.py's _LAYOUT", _LEARNER),
    Key("learner.last_actor_loss", "()", "float32", "the last actor step's J, which an update without an actor "
        "step reports (policy_frequency > 1)", _LEARNER),
    Key("learner.target_noise_generator", "(G,)", "uint8", "the generator of TD3's target policy smoothing noise "
        "(target_noise > 0 only)", _LEARNER),
    Key("buffer.generator", "(G,)", "uint8", "the replay buffer's sampling generator (on the CPU whatever the "
        "buffer's device)", "ReplayBuffer.state_dict"),
    Key("noise.generator", "(G,)", "uint8", "the exploration noise's generator", "ActionNoise.state_dict"),
    Key("noise.drawn", "(2,)", "float64", "Σ x² and the number of noise components drawn since the last metrics "
        "row (noise_rms)", "ActionNoise.state_dict"),
    Key("noise.x", "(act_dim,)", "float32", "the Ornstein-Uhlenbeck process's current value (noise = ou only)",
        "OrnsteinUhlenbeckNoise.state_dict"),
    Key("explore_generator", "(G,)", "uint8", "the warm-up's generator of uniform random actions",
        "training.state.training_state"),
    Key("torch_rng", "(G,)", "uint8", "torch's global generator", "training.state.training_state"),
    Key("trainer.acc", "(3,)", "float32", "the sums of critic loss, actor loss and mean Q since the last metrics "
        "row", "Trainer.state_dict"),
)

#: The one key of a buffer chunk file, rows [k · chunk_rows, min((k + 1) · chunk_rows, size)) of the buffer.
CHUNK = Key("rows", "(n, width)", "float32", "transitions, one a row: [obs | action | reward | next_obs | "
            "terminated | truncated]", "ReplayBuffer.chunk (written by storage.checkpoint.ChunkFiles)")
#: The one key of a metrics history chunk file, rows [k · 4096, (k + 1) · 4096) of the run's metrics rows.
HISTORY_CHUNK = Key("rows", "(n, columns)", "float64", "metrics rows, one a row, in training.history.columns' "
                    "order; NaN where a row has no value", "training.state.history_chunk (written by "
                    "storage.checkpoint.ChunkFiles)")

#: The JSON keys (dotted paths) of manifest.json's "meta"; ``training`` only in training checkpoints.
META: tuple[Key, ...] = (
    Key("algorithm", "", "str", '"DDPG"', "DDPG.metadata"),
    Key("env_id", "", "str | null", "the Gymnasium id trained on (null: an unregistered env)", "DDPG.metadata"),
    Key("config", "", "object", "every DDPGConfig field (config.toml's [ddpg])", "DDPG.metadata"),
    Key("obs_dim", "", "int", "observation size", "DDPG.metadata"),
    Key("observation", "", "int | list", "how the env's observations become the networks' input: obs_dim for a "
        "flat Box, or a Dict's [[key, size], ...] in the order the networks read them", "DDPG.metadata"),
    Key("act_dim", "", "int", "action size", "DDPG.metadata"),
    Key("action_low", "(act_dim,)", "list[float]", "the action space's lower bounds", "DDPG.metadata"),
    Key("action_high", "(act_dim,)", "list[float]", "the action space's upper bounds", "DDPG.metadata"),
    Key("num_updates", "", "int", "gradient updates done", "DDPG.metadata"),
    Key("step", "", "int", "environment steps done", "DDPG.metadata"),
    Key("training.learner.actor_optimizer.param_groups", "", "list", "Adam's settings (lr, betas, ...)", _LEARNER),
    Key("training.learner.actor_optimizer.state", "", "object", "per parameter index, the names of its state "
        "tensors in training.safetensors", _LEARNER),
    Key("training.learner.critic_optimizer.param_groups", "", "list", "as the actor's", _LEARNER),
    Key("training.learner.critic_optimizer.state", "", "object", "as the actor's", _LEARNER),
    *(Key(f"training.buffer.{k}", "", "int", what, "ReplayBuffer.state_dict") for k, what in (
        ("capacity", "rows the buffer holds at most"), ("obs_dim", "observation size"), ("act_dim", "action size"),
        ("pos", "the next row to write"), ("size", "rows filled"), ("added", "transitions ever added"),
        ("chunk_rows", "rows per chunk file"))),
    Key("training.buffer.chunk_files", "", "list[str]", "the chunk file of every chunk, in order",
        "storage.checkpoint.ChunkFiles"),
    Key("training.numpy_rng", "", "object", "numpy's global generator (MT19937 state)", "training.state"),
    Key("training.python_rng", "", "list", "Python's random module's state", "training.state"),
    Key("training.env_rng", "", "object", "the env's generator (its bit generator's state)", "training.state"),
    Key("training.action_space_rng", "", "object", "the action space's generator", "training.state"),
    Key("training.trainer", "", "object | null", "the training loop's state (null: never trained)",
        "Trainer.state_dict"),
    *(Key(f"training.trainer.{k}", "", t, what, "Trainer.state_dict") for k, t, what in (
        ("step", "int", "environment steps done"), ("episodes", "int", "episodes finished"),
        ("episode_return", "float", "the current episode's return so far"),
        ("episode_length", "int", "the current episode's steps so far"),
        ("mid_episode", "bool", "saved inside an episode (resumes with a fresh one)"),
        ("last_eval", "[float, float] | null", "the last evaluation's mean and std"),
        ("last_eval_step", "int", "its step (−1: none yet)"), ("wall_s", "float", "training seconds so far"),
        ("acc_n", "int", "updates summed in trainer.acc"), ("seeded", "bool", "the action space was seeded"))),
    Key("training.history.columns", "", "list[str]", "the columns of the metrics history's chunks, in order "
        "(metrics.csv's)", "training.state.training_state"),
    Key("training.history.rows", "", "int", "metrics rows so far (one per finished episode and per evaluation)",
        "training.state.training_state"),
    Key("training.history.chunk_rows", "", "int", "rows per history chunk file (4096)", "training.state"),
    Key("training.history.chunk_files", "", "list[str]", "the history's chunk files, in order",
        "storage.checkpoint.ChunkFiles"),
)


def key_pattern(name: str) -> re.Pattern[str]:
    """The regular expression of a :class:`Key` name: ``{i}``, ``{p}`` and ``{k}`` stand for an index."""
    return re.compile("^" + re.escape(name).replace(r"\{i\}", r"\d+").replace(r"\{p\}", r"\d+")
                      .replace(r"\{k\}", r"\d+") + "$")


def _tree(paths: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


_META_TREE = _tree([k.name for k in META])
# JSON objects whose own keys are values, not this format's: checked by their readers
_OPAQUE = {"config", "training.learner.actor_optimizer.state", "training.learner.critic_optimizer.state",
           "training.numpy_rng", "training.env_rng", "training.action_space_rng"}
_OPTIONAL = {"training"}


def check_meta(meta: Any, where: str) -> None:
    """Refuse (CheckpointError) a manifest's meta with a key this page does not describe, or without one it does,
    down to the objects whose keys are data (the config, the optimisers' state lists, generator states), which
    their readers check. ``training.trainer`` may be null."""

    def walk(node: Any, tree: dict[str, Any], path: str) -> None:
        if not isinstance(node, dict):
            raise CheckpointError(f"{where}: meta{'.' + path if path else ''} must be a JSON object")
        for key in node:
            if key not in tree:
                raise CheckpointError(f"{where}: meta.{path + '.' if path else ''}{key} is not a key of checkpoint "
                                      f"format {VERSION}")
        for key, sub in tree.items():
            full = f"{path}.{key}" if path else key
            if key not in node:
                if full in _OPTIONAL:
                    continue
                raise CheckpointError(f"{where}: meta.{full} is missing")
            if sub and full not in _OPAQUE and not (full == "training.trainer" and node[key] is None):
                walk(node[key], sub, full)

    walk(meta, _META_TREE, "")


# An upgrade step is history: it writes the format of its version with the values that version had, whatever
# the code does today. Format 1's empty health record (its layout: algo/health.py at d91091f) and its default
# rows per buffer chunk (data/buffer.py's chunk_rows_for at d91091f):
_V1_EMPTY_HEALTH = (0.0, 0.0, 0.0, -float("inf"), -float("inf"), -float("inf"), 0.0, 0.0, 0.0)
_CUDA_GENERATOR_BYTES = 16  # a CUDA (Philox) generator's state: its seed and offset, 8 bytes each
# format 1's metrics columns (training/loop.py's METRIC_COLUMNS at d91091f) and format 2's rows per history chunk
_V1_METRIC_COLUMNS = ("step", "episodes", "episode_return", "episode_length", "eval_mean", "eval_std", "eval_q_mean",
                      "eval_mc_return", "eval_q_gap", "critic_loss", "actor_loss", "q_mean", "critic_grad_norm",
                      "actor_grad_norm", "td_error_mean", "td_error_max", "q_max", "q_min", "tanh_saturated",
                      "action_at_bound", "noise_rms", "steps_per_s", "wall_s")
_V2_HISTORY_CHUNK_ROWS = 4096


def _v1_chunk_rows(width: int) -> int:
    rows = max(256, 4 * 2**20 // (4 * width))  # the power of two keeping a chunk at or below 4 MB
    return 1 << (rows.bit_length() - 1)


def _upgrade_1(meta: dict[str, Any], files: dict[str, dict[str, torch.Tensor]]) -> None:
    """Version 1 -> 2, in place (the module doc lists what changed)."""
    training = meta.get("training")
    if training is None:
        return
    if not isinstance(training, dict) or training.get("version", 1) != 1:
        raise CheckpointError(f"training state version {training.get('version')!r} is not one of format 1")
    training.pop("version", None)
    training["learner"] = {k: training.pop(k) for k in ("actor_optimizer", "critic_optimizer") if k in training}
    tensors = files.get("training", {})
    for old in [k for k in tensors if k.startswith(("actor_optimizer.", "critic_optimizer."))]:
        tensors[f"learner.{old}"] = tensors.pop(old)
    health = tensors.pop("trainer.health", None)  # early checkpoints had none: an empty record
    tensors["learner.health"] = health if health is not None else torch.tensor(_V1_EMPTY_HEALTH)
    tensors["learner.last_actor_loss"] = torch.zeros(())  # what version 1 restored
    tensors.setdefault("noise.drawn", torch.zeros(2, dtype=torch.float64))  # none before the noise_rms signal
    generator = tensors.get("buffer.generator")
    if generator is not None and generator.numel() == _CUDA_GENERATOR_BYTES:  # a CUDA buffer's: (seed, offset)
        seed, offset = (int.from_bytes(bytes(generator[i:i + 8].tolist()), "little") for i in (0, 8))
        tensors["buffer.generator"] = torch.Generator().manual_seed((seed ^ offset * 0x9E3779B97F4A7C15) % 2**63
                                                                    ).get_state()
    trainer = training.get("trainer")
    history = trainer.pop("history", []) if isinstance(trainer, dict) else []
    if isinstance(history, list):  # the rows out of the manifest, served as chunk files held in memory
        names = []
        for k in range(-(-len(history) // _V2_HISTORY_CHUNK_ROWS)):
            rows = history[k * _V2_HISTORY_CHUNK_ROWS:(k + 1) * _V2_HISTORY_CHUNK_ROWS]
            try:
                table = [[float("nan") if r.get(c) is None else float(r[c]) for c in _V1_METRIC_COLUMNS] for r in rows]
            except (AttributeError, TypeError, ValueError):
                raise CheckpointError("the metrics history of this format-1 checkpoint is not a list of rows") from None
            files[f"history_{k:05d}"] = {"rows": torch.tensor(table, dtype=torch.float64)}
            names.append(f"history_{k:05d}.safetensors")
        training["history"] = {"columns": list(_V1_METRIC_COLUMNS), "rows": len(history),
                               "chunk_rows": _V2_HISTORY_CHUNK_ROWS, "chunk_files": names}
    buffer = training.get("buffer")
    if isinstance(buffer, dict) and all(isinstance(buffer.get(k), int) for k in ("capacity", "size", "pos")):
        capacity, size, pos = buffer["capacity"], buffer["size"], buffer["pos"]
        buffer.setdefault("added", size if size < capacity else capacity + pos)  # the least count that fits
        if isinstance(buffer.get("obs_dim"), int) and isinstance(buffer.get("act_dim"), int):
            buffer.setdefault("chunk_rows", _v1_chunk_rows(2 * buffer["obs_dim"] + buffer["act_dim"] + 3))
        data = tensors.pop("buffer.data", None)
        if "chunk_files" not in buffer and data is not None and isinstance(buffer.get("chunk_rows"), int):
            # before chunks: the rows inside training.safetensors, served as chunk files held in memory
            rows, names = buffer["chunk_rows"], []
            for k in range(-(-data.shape[0] // max(rows, 1))):
                names.append(f"buffer_{k:05d}.safetensors")
                files[f"buffer_{k:05d}"] = {"rows": data[k * rows:(k + 1) * rows]}
            buffer["chunk_files"] = names


def _upgrade_2(meta: dict[str, Any], files: dict[str, dict[str, torch.Tensor]]) -> None:
    """Version 2 -> 3, in place: every version-2 checkpoint is of a flat Box observation."""
    meta["observation"] = meta.get("obs_dim")


_UPGRADES = {1: _upgrade_1, 2: _upgrade_2}


def upgrade(version: Any, meta: Mapping[str, Any], files: Mapping[str, Mapping[str, torch.Tensor]]
            ) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """A checkpoint of format ``version`` as this version's: (meta, {file name: {tensor name: tensor}}), each
    step of the version list applied in turn (the arguments are not modified). Files a step makes (an early
    version-1 buffer's chunks) are among the returned ones. CheckpointError for a version this ddpgkit cannot
    read."""
    if type(version) is not int or not 1 <= version <= VERSION:
        raise CheckpointError(f"checkpoint format version {version!r} is not supported (this ddpgkit reads 1 to "
                              f"{VERSION})")
    out_meta = _copy(meta)
    out_files = {name: dict(tensors) for name, tensors in files.items()}
    for v in range(version, VERSION):
        _UPGRADES[v](out_meta, out_files)
    return out_meta, out_files


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
