"""The edge scenario's tests use the shared lab clients; the client
container (outside the cluster) gets the lab CA to verify the site with."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
from labclient import ca_file, container, docker  # noqa: E402 (after the path is set)


@pytest.fixture(scope="session")
def client_ca():
    """Where the client container finds the lab CA."""
    docker("cp", ca_file(), f"{container('client')}:/tmp/lab-ca.crt")
    return "/tmp/lab-ca.crt"
