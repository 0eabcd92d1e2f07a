"""The complete training state of a DDPG run, as tensors and JSON (never pickle), in the checkpoint format
of :mod:`ddpgkit.storage.schema` (every key, its shape and meaning are listed there).

A checkpoint made with ``DDPG.save(path, training_state=True)`` holds, besides the four networks:

* the learner's state: both Adam optimisers (moments and step counts as tensors, hyperparameters as JSON),
  the health record since the last metrics row and the last actor loss;
* the replay buffer's contents, write position, size and sampling generator;
* the exploration noise's generator and (Ornstein-Uhlenbeck) state, the warm-up generator;
* torch's, numpy's and Python's global random states, the env's and its action space's generators;
* the training loop: step and episode counters, the current episode, the last evaluation, the
  metrics rows so far, the training time.

Periodic checkpoints are taken at the end of an episode, where the env needs no state of its own
beyond its generator: the next ``reset`` then starts the same episode the uninterrupted run starts, so
a resumed run is bit-identical to one that was never stopped (on the same device, thread count and
versions). A checkpoint taken mid-episode (a second Ctrl-C, or the end of a run that stops
mid-episode) records the episode's progress, but a Gymnasium env cannot hand over its internal
state, so training resumes with a fresh episode: close, not bit-identical.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..algo.learner import Learner
from ..errors import CheckpointError, one_line
from .loop import INT_COLUMNS, METRIC_COLUMNS, Agent, Trainer


class TrainableAgent(Agent):
    """What the training state holds of an agent beyond what the loop needs."""

    explore_generator: torch.Generator
    trainer: Trainer | None


def _optimizer_state(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    sd = opt.state_dict()
    layout: dict[str, list[str]] = {}
    for idx, st in sd["state"].items():
        names = []
        for name, value in st.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"{prefix}.{idx}.{name}"] = value
            names.append(name)
        layout[str(idx)] = names
    return {"param_groups": sd["param_groups"], "state": layout}


def _same_kind(saved: Any, current: Any) -> bool:
    """A saved param-group value may replace the current one: same JSON kind (bool apart from numbers)."""
    if isinstance(current, bool) or current is None:
        return isinstance(saved, bool) or (current is None and saved is None)
    if isinstance(current, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(current, (tuple, list)):
        return (isinstance(saved, list) and len(saved) == len(current)
                and all(_same_kind(s, c) for s, c in zip(saved, current)))
    return type(saved) is type(current)


#: The Adam settings that change what a step computes. A checkpoint's values of these replace the optimiser's;
#: the others (fused, foreach, capturable, differentiable, and any a later torch adds) choose how it runs, so
#: this agent's own are kept, and a checkpoint of another torch version that has more or fewer of them loads.
ADAM_UPDATE_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    meta: dict[str, Any]) -> None:
    current = opt.state_dict()["param_groups"]
    groups = meta["param_groups"]
    if (not isinstance(groups, list) or len(groups) != len(current)
            or not all(isinstance(g, dict) and g.get("params") == c["params"]
                       and all(_same_kind(g[k], c[k]) for k in ADAM_UPDATE_KEYS if k in c and k in g)
                       for g, c in zip(groups, current))):
        raise ValueError(f"{prefix}: optimiser settings do not match this agent's optimiser")
    missing = [k for k in ("lr", "betas", "eps", "weight_decay") if any(k not in g for g in groups)]
    if missing:
        raise ValueError(f"{prefix}: the optimiser's settings lack {', '.join(missing)}")
    merged = [{**c, **{k: g[k] for k in ADAM_UPDATE_KEYS if k in c and k in g}} for g, c in zip(groups, current)]
    state = {int(idx): {name: tensors[f"{prefix}.{idx}.{name}"] for name in names}
             for idx, names in meta["state"].items()}
    opt.load_state_dict({"state": state, "param_groups": merged})


def _np_state_json(st: dict[str, Any]) -> dict[str, Any]:
    """numpy's legacy generator state (``get_state(legacy=False)``) as JSON."""
    return {**st, "state": {"key": st["state"]["key"].tolist(), "pos": int(st["state"]["pos"])}}


def _np_state(d: dict[str, Any]) -> dict[str, Any]:
    """:func:`_np_state_json`'s JSON back as a state, checked by a generator of numpy's that takes it."""
    state = {**d, "state": {"key": np.asarray(d["state"]["key"], dtype=np.uint32), "pos": d["state"]["pos"]}}
    np.random.RandomState().set_state(state)
    return state


def _checked_torch_state(state: torch.Tensor) -> torch.Tensor:
    torch.Generator().set_state(state)  # raises on a state of the wrong size or type
    return state


def _checked_python_state(state: tuple[Any, ...]) -> tuple[Any, ...]:
    random.Random().setstate(state)  # raises on a malformed state
    return state


def learner_state(learner: Learner, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The learner's state (``learner.*`` of the schema): its tensors added to ``tensors``, its JSON returned."""
    meta = {"actor_optimizer": _optimizer_state("learner.actor_optimizer", learner.actor_optimizer, tensors),
            "critic_optimizer": _optimizer_state("learner.critic_optimizer", learner.critic_optimizer, tensors)}
    tensors["learner.health"] = learner.health.cpu()
    tensors["learner.last_actor_loss"] = learner.last_actor_loss.cpu()
    if learner.target_noise_generator is not None:  # target_noise > 0
        tensors["learner.target_noise_generator"] = learner.target_noise_generator.get_state()
    return meta


def restore_learner(learner: Learner, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Put :func:`learner_state`'s output back; a value of the wrong type or shape raises ValueError."""
    _load_optimizer("learner.actor_optimizer", learner.actor_optimizer, tensors, meta["actor_optimizer"])
    _load_optimizer("learner.critic_optimizer", learner.critic_optimizer, tensors, meta["critic_optimizer"])
    health, last = tensors["learner.health"], tensors["learner.last_actor_loss"]
    if health.shape != learner.health.shape or health.dtype != torch.float32 or bool(torch.isnan(health).any()):
        raise ValueError(f"learner.health has shape {tuple(health.shape)} {health.dtype}, "
                         f"expected {tuple(learner.health.shape)} float32 without NaN")
    if last.shape != () or last.dtype != torch.float32 or not bool(torch.isfinite(last)):
        raise ValueError(f"learner.last_actor_loss must be a finite float32 scalar, got {tuple(last.shape)} "
                         f"{last.dtype}")
    learner.health.copy_(health)
    learner.last_actor_loss = last.to(learner.device)
    generator = tensors.get("learner.target_noise_generator")
    if (generator is None) != (learner.target_noise_generator is None):
        raise ValueError("learner.target_noise_generator is " + ("missing" if generator is None else "unexpected")
                         + f" for target_noise = {learner.config.target_noise}")
    if generator is not None and learner.target_noise_generator is not None:
        learner.target_noise_generator.set_state(_checked_torch_state(generator))


#: Metrics rows per chunk file of a checkpoint's history (~0.9 MB of float64 each).
HISTORY_CHUNK_ROWS = 4096


def history_chunks(history: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """``(index, rows)`` of every chunk of a metrics history: chunk ``k`` holds rows ``[k · R, (k + 1) · R)`` with
    R = :data:`HISTORY_CHUNK_ROWS`. Rows are only ever appended, so a chunk changed iff its row count did."""
    n, r = len(history), HISTORY_CHUNK_ROWS
    return [(k, min(r, n - k * r)) for k in range(-(-n // r))]


def history_chunk(history: list[dict[str, Any]], k: int) -> torch.Tensor:
    """Chunk ``k`` of a metrics history as a (rows, len(METRIC_COLUMNS)) float64 tensor, NaN where a row has
    None (a metrics value is never NaN: every one is finite or not measured)."""
    rows = history[k * HISTORY_CHUNK_ROWS:(k + 1) * HISTORY_CHUNK_ROWS]
    nan = float("nan")
    return torch.tensor([[nan if (v := row.get(c)) is None else float(v) for c in METRIC_COLUMNS] for row in rows],
                        dtype=torch.float64).reshape(len(rows), len(METRIC_COLUMNS))


def history_rows(columns: Any, chunks: list[torch.Tensor]) -> list[dict[str, Any]]:
    """The metrics rows of a history's chunk tensors (:func:`history_chunk`; ``columns``: theirs, in order); a
    column this version does not know, a tensor of another shape or dtype, or a non-integral integer column
    raises ValueError."""
    if not isinstance(columns, list) or not set(columns) <= set(METRIC_COLUMNS) or len(set(columns)) != len(columns):
        raise ValueError(f"the history's columns must be metrics.csv's, got {columns!r}")
    rows = []
    for t in chunks:
        if t.dtype != torch.float64 or t.ndim != 2 or t.shape[1] != len(columns):
            raise ValueError(f"a history chunk has shape {tuple(t.shape)} {t.dtype}, expected (rows, "
                             f"{len(columns)}) float64")
        for values in t.tolist():
            row = dict.fromkeys(METRIC_COLUMNS)
            for c, v in zip(columns, values):
                if v == v:  # not NaN
                    if c in INT_COLUMNS:
                        if not float(v).is_integer():
                            raise ValueError(f"the history's {c} must be integers, got {v!r}")
                        v = int(v)
                    row[c] = v
            rows.append(row)
    return rows


def training_state(agent: TrainableAgent) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything beyond the networks that ``learn`` needs to continue exactly: (tensors, JSON), as
    training.safetensors and meta.training of :mod:`ddpgkit.storage.schema` hold them (the buffer's rows
    apart: ``DDPG.save`` writes them as chunk files)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"learner": learner_state(agent.learner, tensors)}
    buf_tensors, meta["buffer"] = agent.buffer.state_dict(with_data=False)  # the rows: DDPG.save, by chunk
    tensors.update({f"buffer.{k}": v for k, v in buf_tensors.items()})
    tensors.update({f"noise.{k}": v for k, v in agent.noise.state_dict().items()})
    tensors["explore_generator"] = agent.explore_generator.get_state()
    torch_state, numpy_state, python_state = agent.global_generators.get()
    tensors["torch_rng"] = torch_state
    meta["numpy_rng"] = _np_state_json(numpy_state)
    meta["python_rng"] = [python_state[0], list(python_state[1]), python_state[2]]
    env = agent.env
    meta["env_rng"] = env.unwrapped.np_random.bit_generator.state
    meta["action_space_rng"] = env.action_space.np_random.bit_generator.state
    if agent.trainer is not None:
        t_tensors, meta["trainer"] = agent.trainer.state_dict()
        tensors.update({f"trainer.{k}": v for k, v in t_tensors.items()})
    else:
        meta["trainer"] = None
    rows = len(agent.trainer.history) if agent.trainer is not None else 0  # the rows: DDPG.save, by chunk
    meta["history"] = {"columns": list(METRIC_COLUMNS), "rows": rows, "chunk_rows": HISTORY_CHUNK_ROWS}
    return tensors, meta


def _chunk_reader(names: Any, read_file: Callable[[str], dict[str, torch.Tensor]]) -> Callable[[int], torch.Tensor]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("buffer chunk_files must be a list of file names")

    def read_chunk(k: int) -> torch.Tensor:
        if k >= len(names):
            raise ValueError(f"the checkpoint lists {len(names)} buffer chunks, the buffer needs more")
        return read_file(names[k])["rows"]

    return read_chunk


def _read_history(meta: dict[str, Any], read_file: Callable[[str], dict[str, torch.Tensor]]) -> list[dict[str, Any]]:
    names, n = meta["chunk_files"], meta["rows"]
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names) or not isinstance(n, int):
        raise ValueError("history chunk_files must be a list of file names and rows an integer")
    if meta["chunk_rows"] != HISTORY_CHUNK_ROWS:
        raise ValueError(f"history chunk_rows must be {HISTORY_CHUNK_ROWS}, got {meta['chunk_rows']!r}")
    rows = history_rows(meta["columns"], [read_file(name)["rows"] for name in names])
    if len(rows) != n or len(names) != len(history_chunks(rows)):
        raise ValueError(f"the history lists {n} rows in {len(names)} chunks, its chunks hold {len(rows)}")
    return rows


def restore_training_state(agent: TrainableAgent, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                           where: str, read_file: Callable[[str], dict[str, torch.Tensor]]) -> None:
    """Put :func:`training_state`'s output (of this version of the format: :func:`ddpgkit.storage.schema.upgrade`
    first) back into a freshly built agent of the same config. The replay buffer's rows come from the chunk
    files ``meta["buffer"]["chunk_files"]`` names, each read (and verified) by ``read_file`` as it is copied in.
    Anything inconsistent is one CheckpointError naming ``where``."""
    try:
        restore_learner(agent.learner, tensors, meta["learner"])
        names = meta["buffer"]["chunk_files"]
        agent.buffer.load_state_dict({k[len("buffer."):]: v for k, v in tensors.items() if k.startswith("buffer.")},
                                     meta["buffer"], _chunk_reader(names, read_file))
        if len(names) != len(agent.buffer.chunks()):
            raise ValueError(f"the checkpoint lists {len(names)} buffer chunks for {len(agent.buffer.chunks())}")
        agent.noise.load_state_dict({k[len("noise."):]: v for k, v in tensors.items() if k.startswith("noise.")})
        agent.explore_generator.set_state(tensors["explore_generator"])
        version, internal, gauss = meta["python_rng"]
        agent.global_generators.set(_checked_torch_state(tensors["torch_rng"]), _np_state(meta["numpy_rng"]),
                                    _checked_python_state((version, tuple(internal), gauss)))
        env = agent.env
        env.unwrapped.np_random.bit_generator.state = meta["env_rng"]
        env.action_space.np_random.bit_generator.state = meta["action_space_rng"]
        history = _read_history(meta["history"], read_file)
        if meta["trainer"] is not None:
            trainer = Trainer(agent)
            trainer.load_state_dict({k[len("trainer."):]: v for k, v in tensors.items() if k.startswith("trainer.")},
                                    meta["trainer"], history)
            # every env step stores one transition
            if agent.buffer.size != min(trainer.step, agent.buffer.capacity):
                raise ValueError(f"the replay buffer holds {agent.buffer.size} transitions after {trainer.step} steps")
            agent.trainer = trainer
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{where}: training state is inconsistent ({type(e).__name__}: {one_line(e)})") from None
