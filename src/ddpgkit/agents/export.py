"""A trained policy as one graph that runs without the training stack: ONNX (for onnxruntime) or TorchScript.

The graph is the whole map from what the env gives to what it takes::

    inputs: the observation — one (B, obs_dim) tensor ``obs``, or for a Dict env one (B, size) tensor per key, named
            by the key, concatenated inside the graph in the recorded order (ddpgkit.envs.spaces)
    s ↦ clip((s − μ) / sqrt(σ² + ε), −c, c)     (obs_norm, its statistics frozen as constants; absent when off)
    a = scale · tanh(f(s)) + bias               (the actor, μ(s) rescaled to the env's bounds)
    output: ``action`` (B, act_dim), float32; B any size

in fp32 whatever the training precision. Beside the file a JSON contract (:func:`contract`) says what it expects and
where it came from: the observation and action spaces (shapes, bounds, dtypes, key order), the env id, the
versions of ddpgkit, torch and the ONNX opset, the checkpoint's step and the SHA-256 of its manifest (which holds
every file's SHA-256). ``ddpgkit eval RUN --policy FILE`` runs such a file in the env through onnxruntime (or
TorchScript) and checks the contract against the env first.

ONNX goes through the exporter torch 2.13 recommends (``torch.onnx.export(..., dynamo=True)``), which needs the
``export`` extra (onnx, onnxscript; onnxruntime to run and check the file).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..envs.spaces import ObservationLayout
from ..errors import DDPGKitError, one_line
from ..nn.actor_critic import Actor, scale_action
from ..nn.normalize import RunningNorm
from ..storage.atomic import atomic_write_json
from ..storage.manifest import MANIFEST

FORMATS = ("onnx", "torchscript")
#: the file name each format gets by default, beside its contract (``policy.json``)
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
#: The ONNX opset the export asks for.
OPSET = 18


class Exportable(Protocol):
    """What an export reads of an agent (:class:`ddpgkit.DDPG` has it)."""

    actor: Actor
    obs_norm: RunningNorm | None
    obs_layout: ObservationLayout
    obs_dim: int
    env: gym.Env
    env_id: str | None
    num_timesteps: int


class ExportError(DDPGKitError, ValueError):
    """An export cannot be made (a missing extra, an unwritable path, an unknown format), or an exported policy does
    not fit the env it is run on."""


class PolicyGraph(nn.Module):
    """The exported map (module doc) of an agent's actor and normalization, as fp32 constants on the CPU: one input
    per observation key (or one ``obs``), one output ``action``."""

    def __init__(self, agent: Exportable) -> None:
        super().__init__()
        self.net = copy.deepcopy(agent.actor.net).float().cpu().eval()
        self.register_buffer("action_scale", agent.actor.action_scale.detach().float().cpu().clone())
        self.register_buffer("action_bias", agent.actor.action_bias.detach().float().cpu().clone())
        self.normalize = agent.obs_norm is not None
        if agent.obs_norm is not None:
            mean, std = agent.obs_norm.scale()  # float32 (obs_dim,): what the agent's normalize uses
            self.register_buffer("mean", mean.detach().cpu().clone())
            self.register_buffer("std", std.detach().cpu().clone())
            self.clip = float(agent.obs_norm.clip)
        self.keys = [k for k, _ in agent.obs_layout.keys] if agent.obs_layout.keys is not None else ["obs"]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The action (B, act_dim) for the observation: (B, obs_dim), or one (B, size) per key in order."""
        obs = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)  # (B, obs_dim)
        if self.normalize:
            obs = torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)
        return scale_action(self.net(obs), self.action_scale, self.action_bias)  # (B, act_dim)


def _space_json(space: gym.spaces.Space) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(space).__name__, "shape": list(space.shape or ()),
                           "dtype": str(space.dtype) if space.dtype is not None else None}
    if isinstance(space, gym.spaces.Box):  # JSON has no infinity: an unbounded side is null
        out["low"], out["high"] = (_bounds(space.low), _bounds(space.high))
    return out


def _bounds(values: np.ndarray) -> Any:
    """Bounds as JSON: floats, null where infinite (MuJoCo's observations are unbounded)."""
    return _finite_or_none(np.asarray(values, dtype=np.float64).tolist())


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return v if np.isfinite(v) else None


def contract(agent: Exportable, fmt: str, file: Path, checkpoint: Path | None, step: int) -> dict[str, Any]:
    """The JSON contract of an exported policy (module doc)."""
    obs_space = agent.env.observation_space
    if agent.obs_layout.keys is not None:
        observation = {"keys": [{"name": k, "size": n, **_space_json(obs_space[k])} for k, n in agent.obs_layout.keys]}
    else:
        observation = {"keys": [{"name": "obs", "size": agent.obs_dim, **_space_json(obs_space)}]}
    digest = None
    if checkpoint is not None and (checkpoint / MANIFEST).is_file():
        digest = hashlib.sha256((checkpoint / MANIFEST).read_bytes()).hexdigest()
    return {
        "format": fmt, "file": file.name, "inputs": [k["name"] for k in observation["keys"]], "output": "action",
        "input_dtype": "float32", "batch": "any", "observation": observation,
        "action": _space_json(agent.env.action_space), "env_id": agent.env_id, "normalized": agent.obs_norm is not None,
        "versions": {"ddpgkit": __version__, "torch": torch.__version__,
                     "onnx_opset": OPSET if fmt == "onnx" else None},
        "checkpoint": {"path": str(checkpoint) if checkpoint is not None else None, "step": step,
                       "manifest_sha256": digest},
    }


def export_policy(agent: Exportable, path: str | Path, fmt: str = "onnx",
                  checkpoint: Path | None = None) -> tuple[Path, Path]:
    """Write ``agent``'s policy as ``fmt`` to ``path`` and its contract beside it (``path`` with ``.json``); returns
    both paths. The file is written to a temporary name and renamed, so a failed export leaves no partial file and
    an earlier good one in place."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    path = Path(path)
    if path.suffix == ".json":
        raise ExportError(f"{path}: the policy file cannot be a .json (its contract is written beside it as one)")
    if not path.parent.is_dir():
        raise ExportError(f"{path}: its directory {path.parent} does not exist")
    graph = PolicyGraph(agent).eval()
    examples = tuple(torch.zeros(2, n) for n in ([n for _, n in agent.obs_layout.keys] if agent.obs_layout.keys
                                                 else [agent.obs_dim]))
    tmp = path.with_name(f".{path.name}.tmp{SUFFIXES[fmt]}")
    try:
        if fmt == "onnx":
            _onnx(graph, examples, tmp)
        else:
            torch.jit.save(torch.jit.trace(graph, examples), str(tmp))
        info = contract(agent, fmt, path, checkpoint, agent.num_timesteps)
        meta = atomic_write_json(path.with_suffix(".json"), info)
        tmp.replace(path)
    except OSError as e:
        raise ExportError(f"{path}: cannot write: {e.strerror or one_line(e)}") from None
    finally:
        tmp.unlink(missing_ok=True)
        for extra in tmp.parent.glob(tmp.name + ".data"):  # an external-data file the exporter may write
            extra.unlink(missing_ok=True)
    return path, meta


def _onnx(graph: PolicyGraph, examples: tuple[torch.Tensor, ...], path: Path) -> None:
    try:
        import onnxscript  # noqa: F401, PLC0415 - the export extra: torch's ONNX exporter needs it
    except ImportError:
        raise ExportError("ONNX export needs the export extra (onnx and onnxscript, which torch's exporter uses): "
                          "pip install 'ddpgkit[export]'") from None
    batch = torch.export.Dim("batch")
    dynamic = {name: {0: batch} for name in graph.keys}
    # the exporter prints its progress, warns about torch's own deprecations and logs what it skips (torchvision's
    # operators): none of it is the user's to act on; an export that fails still raises
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, examples, str(path), dynamo=True, input_names=graph.keys, output_names=["action"],
                              dynamic_shapes=(tuple(dynamic[k] for k in graph.keys),), opset_version=OPSET,
                              external_data=False)
    finally:
        logger.setLevel(level)


# ---- running an exported policy -----------------------------------------------------------------

def read_contract(policy: str | Path) -> dict[str, Any]:
    """The contract beside an exported policy file (``FILE.json``), or ExportError in one line."""
    path = Path(policy).with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ExportError(f"{path}: cannot read the policy's contract: {e.strerror or e}") from None
    except ValueError as e:
        raise ExportError(f"{path}: not a policy contract ({one_line(e)})") from None
    if not isinstance(data, dict) or data.get("format") not in FORMATS or not isinstance(data.get("observation"), dict):
        raise ExportError(f"{path}: not a policy contract written by ddpgkit export")
    return data


def check_contract(data: dict[str, Any], env: gym.Env, where: str) -> None:
    """ExportError naming the difference unless the env's observation and action spaces are the contract's."""
    obs_space = env.observation_space
    keys = data["observation"].get("keys", [])
    if isinstance(obs_space, gym.spaces.Dict):
        got = [{"name": k, "size": int(np.prod(s.shape or (1,)))} for k, s in obs_space.spaces.items()]
    else:
        got = [{"name": "obs", "size": int(np.prod(obs_space.shape))}]
    want = [{"name": k.get("name"), "size": k.get("size")} for k in keys]
    if got != want:
        raise ExportError(f"{where}: the policy takes observations {_describe(want)}, the env gives {_describe(got)}")
    action = _space_json(env.action_space)
    for key in ("shape", "low", "high"):
        if data["action"].get(key) != action.get(key):
            raise ExportError(f"{where}: the policy's actions have {key} {data['action'].get(key)}, the env's "
                              f"{action.get(key)}")


def _describe(keys: list[dict[str, Any]]) -> str:
    return ", ".join(f"{k['name']}:{k['size']}" for k in keys) or "(none)"


class ExportedPolicy:
    """An exported file as a batch policy (k, obs_dim) -> (k, act_dim): through onnxruntime (``.onnx``) or
    ``torch.jit.load`` (TorchScript), the flat observations split back into the contract's inputs."""

    def __init__(self, policy: str | Path) -> None:
        self.path = Path(policy)
        self.contract = read_contract(self.path)
        self.sizes = [int(k["size"]) for k in self.contract["observation"]["keys"]]
        self.names = list(self.contract["inputs"])
        if self.contract["format"] == "onnx":
            try:
                import onnxruntime  # noqa: PLC0415 - the export extra
            except ImportError:
                raise ExportError("running an ONNX policy needs onnxruntime (the export extra): "
                                  "pip install 'ddpgkit[export]'") from None
            try:
                self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - onnxruntime's own errors: one line
                raise ExportError(f"{self.path}: onnxruntime cannot load it ({one_line(e)[:200]})") from None
            self.module = None
        else:
            try:
                self.module = torch.jit.load(str(self.path))
            except (RuntimeError, ValueError, OSError) as e:
                raise ExportError(f"{self.path}: cannot load it as TorchScript ({one_line(e)[:200]})") from None
            self.session = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, sum(self.sizes))  # (k, obs_dim)
        parts = np.split(obs, np.cumsum(self.sizes)[:-1], axis=1)
        if self.session is not None:
            return self.session.run(["action"], dict(zip(self.names, parts)))[0]
        with torch.inference_mode():
            return self.module(*(torch.from_numpy(np.ascontiguousarray(p)) for p in parts)).numpy()
