"""The load balancer pair: the virtual IP sits on one load balancer, moves
when HAProxy dies there (not only the host), does not move back when the
failed one returns, and answers from lb2 when lb1's container is killed
under load. Runs last: it kills lb1."""

import time

from labclient import LOAD_BALANCERS, VIP_SITE, ReadLoad, container, docker, vip_holders, wait_for


def keepalived_states(lb):
    """Every VRRP state keepalived logged on a load balancer, oldest first."""
    log = docker("exec", container(lb), "journalctl", "-u", "keepalived", "-o", "cat", "--no-pager", check=False).stdout
    return [line.split("Entering ")[1].split()[0] for line in log.splitlines() if "Entering " in line]


def keepalived_state(lb):
    states = keepalived_states(lb)
    return states[-1] if states else None


def test_the_virtual_ip_is_on_exactly_one_load_balancer():
    assert wait_for(lambda: len(vip_holders()) == 1, 30, what="one holder of the VIP")


def test_the_vip_moves_when_haproxy_dies_and_does_not_move_back():
    holder = vip_holders()[0]
    other = next(lb for lb in LOAD_BALANCERS if lb != holder)
    assert keepalived_state(holder) == "MASTER"
    logged = len(keepalived_states(holder))
    docker("exec", container(holder), "systemctl", "stop", "haproxy")
    try:
        wait_for(lambda: vip_holders() == [other], 30, interval=0.2, what=f"the VIP to move to {other}")
    finally:
        docker("exec", container(holder), "systemctl", "start", "haproxy")
    # The old holder's HAProxy is back and its check passes again (FAULT,
    # then BACKUP, both logged since the stop): it stays BACKUP.
    wait_for(lambda: keepalived_states(holder)[logged:][-2:] == ["FAULT", "BACKUP"], 30, what=f"{holder} BACKUP again")
    assert docker("exec", container(holder), "systemctl", "is-active", "haproxy", check=False).stdout.strip() == "active"
    time.sleep(6)  # several adverts later
    assert vip_holders() == [other]
    assert keepalived_states(holder)[-1] == "BACKUP"


def test_the_vip_answers_from_the_other_load_balancer_when_one_dies_under_load():
    holder = vip_holders()[0]
    other = next(lb for lb in LOAD_BALANCERS if lb != holder)
    with ReadLoad(site=VIP_SITE, workers=4, max_seconds=300, timeout=3) as reads:
        wait_for(lambda: len(reads.attempts) >= 100, 60, what="the load to flow")
        killed = time.monotonic()
        docker("kill", container(holder))
        wait_for(lambda: vip_holders() == [other], 30, interval=0.1, what=f"the VIP on {other}")
        back = reads.wait_for_success_after(killed + 0.5, timeout=60)
        assert back is not None, "no request succeeded through the VIP after the load balancer died"
        settled = len(reads.attempts)
        wait_for(lambda: len(reads.attempts) >= settled + 200, 60, what="the load to go on")
    failed_after = sum(1 for t, ok in reads.attempts if not ok and t > back + 1)
    print(f"\nload balancer killed: {reads.failed} of {len(reads.attempts)} GETs failed; "
          f"the VIP answered again {back - killed:.2f} s after the kill")
    assert failed_after == 0, "requests still failed after the VIP moved"
    docker("start", container(holder))
    wait_for(lambda: keepalived_state(holder) == "BACKUP", 120, what=f"{holder} back as BACKUP")
    time.sleep(6)
    assert vip_holders() == [other], "the VIP moved back to the returning load balancer"
