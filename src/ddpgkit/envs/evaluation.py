"""The env an agent is evaluated on, and its copies for episodes side by side.

An evaluation runs ``eval_episodes`` deterministic episodes; :func:`~ddpgkit.envs.episodes.run_episodes`
steps them together, one forward pass of the policy per step for all of them, which needs one env per
episode. :class:`EvalEnvs` makes them: the evaluation env (given, or a new instance of the training env),
and more of its kind, made again from its id or spec, else deep copies — kept for later evaluations.
An env that cannot be copied runs its episodes one after another.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import gymnasium as gym

from ..errors import EnvError, one_line
from .episodes import BatchPolicy, Episode, run_episodes
from .make import make_env


class EvalEnvs:
    """The evaluation env of a training env, and its copies.

    Args:
        train_env: the env the agent trains on.
        eval_env: the env to evaluate on: an id (made with :func:`~ddpgkit.envs.make.make_env`), an env, or
            None for a new instance of ``train_env`` (from its spec, else a deep copy).
    """

    def __init__(self, train_env: gym.Env, eval_env: str | gym.Env | None = None) -> None:
        self.train_env, self.arg = train_env, eval_env
        self._envs: list[gym.Env] = []  # the evaluation env first, then its copies

    @property
    def env(self) -> gym.Env:
        """The evaluation env (made on first use)."""
        if not self._envs:
            made = make_env(self.arg) if isinstance(self.arg, gym.Env) else self._new()
            if made is None:
                raise EnvError("evaluation needs its own env: the training env has no spec to make one from and "
                               "cannot be deep-copied; pass eval_env=")
            self._envs.append(made)
        return self._envs[0]

    def _new(self) -> gym.Env | None:
        """A new env of the evaluation's kind: made from ``eval_env``'s id, else from the training env's spec,
        else a deep copy (of the evaluation env once there is one, before that of the training env); None if
        it cannot be copied."""
        if isinstance(self.arg, str):
            return make_env(self.arg)
        if self.arg is None and self.train_env.spec is not None:
            stateful = [w for w in _wrappers(self.train_env) if isinstance(w, _STATEFUL)]
            if stateful:
                raise EnvError(f"the training env is wrapped with {type(stateful[0]).__name__}, whose statistics an "
                               "evaluation env made anew from its spec would not share (its observations or rewards "
                               "would be scaled otherwise); pass eval_env= an env to evaluate on")
            try:
                return make_env(gym.make(self.train_env.spec))
            except EnvError:
                raise
            except Exception as e:  # noqa: BLE001 - a spec Gymnasium cannot make again: one line, not a traceback
                raise EnvError(f"{self.train_env.spec.id}: its spec does not make the env again "
                               f"({type(e).__name__}: {one_line(e)}); pass eval_env=") from None
        try:
            return copy.deepcopy(self._envs[0] if self._envs else self.train_env)
        except (TypeError, copy.Error, AttributeError, ValueError):  # e.g. it holds a handle or a lock
            return None

    def copies(self, n: int) -> list[gym.Env]:
        """The evaluation env and enough more of its kind for ``n`` episodes side by side (kept for later
        evaluations); just ``[env]`` if it cannot be copied."""
        self.env  # noqa: B018 - made on first use, and kept in self._envs
        envs = self._envs
        while len(envs) < n:
            extra = self._new()
            if extra is None:
                return envs[:1]
            envs.append(extra)
        return envs[:n]

    def close(self) -> None:
        """Close the envs made here (an ``eval_env`` object passed in is the caller's); made again if used."""
        for env in self._envs:
            if env is not self.arg:
                env.close()
        self._envs = []

    def max_steps(self) -> int:
        """The longest an evaluation episode may run: the env's own time limit, else :data:`MAX_EPISODE_STEPS`."""
        spec = self.env.spec
        return spec.max_episode_steps if spec is not None and spec.max_episode_steps else MAX_EPISODE_STEPS

    def run(self, policy: BatchPolicy, seeds: Sequence[int]) -> list[Episode]:
        """One deterministic episode per seed (episode i from ``reset(seed=seeds[i])``), side by side on copies of
        the evaluation env (:func:`~ddpgkit.envs.episodes.run_episodes`: the policy called once per step for
        all running episodes), or one after another on the evaluation env when it cannot be copied."""
        envs = self.copies(len(seeds))
        limit = self.max_steps()
        if len(envs) < len(seeds):
            episodes = [run_episodes(envs[:1], policy, [s], max_steps=limit)[0] for s in seeds]
        else:
            episodes = run_episodes(envs, policy, list(seeds), max_steps=limit)
        endless = [e for e in episodes if not (e.terminated or e.truncated)]
        if endless:
            raise EnvError(f"an evaluation episode ran {limit:,} steps without ending: the env has no time limit "
                           "(wrap it with gymnasium.wrappers.TimeLimit, or register it with max_episode_steps)")
        return episodes


#: An evaluation episode of an env without a time limit stops here, with an error, instead of running for ever.
MAX_EPISODE_STEPS = 100_000
# wrappers that learn statistics from the data they see: an evaluation env made anew would not share them
_STATEFUL = (gym.wrappers.NormalizeObservation, gym.wrappers.NormalizeReward)


def _wrappers(env: gym.Env) -> list[gym.Env]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out
