"""The failover scenario's tests use the shared lab clients."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
