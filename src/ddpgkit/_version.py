"""The installed version of ddpgkit (a module of its own, so that any module can read it without
importing the package root)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ddpgkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
