"""The failover scenario's tests use the shared lab clients, and each module
its own split-brain sampler."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))

import pytest  # noqa: E402
from labclient import SplitBrainSampler, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def sampler():
    """Every view of the primary, ten times a second, for the whole module;
    never two primaries in any of them."""
    with SplitBrainSampler() as s:
        wait_for(lambda: len(s.rounds) > 5 and all(
            v is not None for kind in ("sql", "http", "routers") for v in s.rounds[-1][1][kind].values()),
            60, what="the sampler to read every node and router")
        yield s
    assert not s.expired, "the sampler reached its time limit before the tests ended"
    assert s.split_brain_rounds() == [], f"more than one primary at once: {s.split_brain_rounds()[:5]}"
