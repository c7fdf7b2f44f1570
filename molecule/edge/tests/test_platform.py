"""The edge scenario runs on Debian 13 in CI (scripts/test: DISTWEB_EDGE_PLATFORM):
the lab is the platform it was started for, with that platform's servers."""

from labclient import assert_lab_platform


def test_the_lab_runs_the_platform_it_was_started_for():
    assert_lab_platform("server1", "lb1")
