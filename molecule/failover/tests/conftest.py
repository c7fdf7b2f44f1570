"""The failover scenario's tests use the shared lab clients, and each module
its own split-brain sampler."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))

import pytest  # noqa: E402
from labclient import sampling  # noqa: E402


@pytest.fixture(scope="module")
def sampler():
    """Every view of the primary, ten times a second, for the whole module;
    never two primaries in any of them."""
    yield from sampling()
