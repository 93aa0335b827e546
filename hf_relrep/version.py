"""The installed version of hf-relrep, read from the package metadata (pyproject.toml is the one place it is set)."""

from importlib.metadata import PackageNotFoundError, version


try:
    __version__ = version("hf-relrep")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
