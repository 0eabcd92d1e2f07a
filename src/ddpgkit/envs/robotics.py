"""Gymnasium-Robotics (the ``robotics`` extra): its ids registered on demand, and one guarded fix that lets its
Fetch tasks run on MuJoCo 4.

:func:`register_robotics` imports ``gymnasium_robotics`` (which registers FetchReach-v4, FetchPush-v4, ...) the first
time :func:`ddpgkit.envs.make.make_env` is asked for an id Gymnasium does not know; without the extra it does
nothing and the id stays unknown. The import prints a notice about the Adroit hand tasks' v1 rewards on stderr
(``farama_notifications``), which is not ours to show: it is held back.

The fix. gymnasium-robotics 1.4.2 (the newest) checks joint types as ``joint_type in (mujoco.mjtJoint.mjJNT_HINGE,
mujoco.mjtJoint.mjJNT_SLIDE)`` with ``joint_type`` a numpy integer read from the model. MuJoCo 4.0's enums compare
unequal to numpy integers from the enum's side (``mjtJoint.mjJNT_SLIDE == np.int32(2)`` is False; from the
integer's side it is True), so every Fetch task fails on construction with a bare AssertionError (in
``mujoco_utils.set_joint_qpos``). :func:`joint_enum_comparison_broken` tests for exactly that; only when it holds
does :func:`fix_joint_types` give gymnasium-robotics' ``mujoco_utils`` module a view of ``mujoco`` whose ``mjtJoint``
constants are plain ints (every other name is MuJoCo's own). With a MuJoCo or gymnasium-robotics that compares
correctly, nothing is changed. The alternative, pinning MuJoCo below 4 for the whole project, would change the
physics every MuJoCo number here was measured with.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import types
from typing import Any

import numpy as np

_registered: bool | None = None  # None: not tried yet
#: why an installed gymnasium_robotics failed to import (an error other than ImportError, so the extra is there but
#: broken), else None
import_error: str | None = None


def register_robotics() -> bool:
    """Register Gymnasium-Robotics' ids (importing it once, its stderr notice held back) and apply
    :func:`fix_joint_types` where MuJoCo needs it; False where the extra is not installed."""
    global _registered, import_error
    if _registered is None:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                importlib.import_module("gymnasium_robotics")
        except ImportError:
            _registered = False
        except Exception as e:  # noqa: BLE001 - installed but broken: the unknown id's message says so
            _registered, import_error = False, f"{type(e).__name__}: {e}".splitlines()[0][:200]
        else:
            fix_joint_types()
            _registered = True
    return _registered


def joint_enum_comparison_broken() -> bool:
    """Whether MuJoCo's joint-type enum compares unequal to the numpy integer of the same value from the enum's side
    (MuJoCo 4.0), which breaks gymnasium-robotics' ``joint_type in (HINGE, SLIDE)`` check."""
    import mujoco  # noqa: PLC0415 - the robotics extra's dependency (tests/test_layout.py: OPTIONAL_EXTRAS)

    slide = mujoco.mjtJoint.mjJNT_SLIDE
    return not (slide == np.int32(int(slide)))  # noqa: SIM201 - the enum's own __eq__ is what is tested


class _IntJointTypes(types.ModuleType):
    """``mujoco`` as gymnasium-robotics' ``mujoco_utils`` sees it after :func:`fix_joint_types`: ``mjtJoint``'s
    constants as ints, everything else MuJoCo's own."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__(real.__name__)
        self._real = real
        self.mjtJoint = types.SimpleNamespace(**{name: int(v) for name, v in real.mjtJoint.__members__.items()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def fix_joint_types() -> bool:
    """Apply the fix (module doc) if the comparison is broken and gymnasium-robotics' ``mujoco_utils`` still reads
    ``mujoco.mjtJoint`` as it did in 1.4.2; True if it was applied (now or before)."""
    utils = importlib.import_module("gymnasium_robotics.utils.mujoco_utils")
    current = getattr(utils, "mujoco", None)
    if isinstance(current, _IntJointTypes):
        return True
    if current is None or not hasattr(current, "mjtJoint") or not joint_enum_comparison_broken():
        return False
    utils.mujoco = _IntJointTypes(current)
    return True
