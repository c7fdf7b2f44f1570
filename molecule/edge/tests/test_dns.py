"""www.foobar.com as the seeds draw it: the lab's name server (distweb.infra.dns
on the monitoring host) answers it with the virtual IP, and the client outside
the cluster reaches the site by name, its certificate verified. The server is
authoritative for the site's zone only: not a resolver for anything else."""

from labclient import SUBNET, VIP, client

NAME_SERVER = f"{SUBNET}.30"  # monitor, the dnsservers group


def dig(*argv):
    out = client("dig", "+time=2", "+tries=1", *argv)
    return out.stdout


def test_the_client_resolves_www_foobar_com_to_the_virtual_ip():
    out = client("getent", "hosts", "www.foobar.com")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == VIP, out.stdout


def test_the_site_is_reached_by_name_with_its_certificate_verified(client_ca):
    # only once the name is known to be the lab's: were the lab's name server
    # down, the client's next one (Docker's) would ask the internet
    assert client("getent", "hosts", "www.foobar.com").stdout.split()[:1] == [VIP]
    out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}", "--cacert", client_ca,
                 "https://www.foobar.com/health")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"200 {VIP}", out.stdout


def test_the_name_server_is_authoritative_for_the_zone():
    answer = dig(f"@{NAME_SERVER}", "www.foobar.com", "A")
    assert "status: NOERROR" in answer and " aa" in answer.split("flags:")[1].split(";")[0], answer
    records = [line.split() for line in answer.split("ANSWER SECTION:")[1].split("\n\n")[0].strip().splitlines()]
    assert records == [["www.foobar.com.", "300", "IN", "A", VIP]], answer
    ns = dig(f"@{NAME_SERVER}", "+short", "foobar.com", "NS").split()
    assert ns == ["ns1.foobar.com."], ns
    assert dig(f"@{NAME_SERVER}", "+short", "ns1.foobar.com", "A").split() == [NAME_SERVER]


def test_it_is_not_a_resolver_for_other_names():
    answer = dig(f"@{NAME_SERVER}", "example.org", "A")
    assert "status: REFUSED" in answer, answer
    assert "ANSWER: 0" in answer


def test_it_hides_its_version():
    answer = dig(f"@{NAME_SERVER}", "version.bind", "CH", "TXT")
    assert "NSD" not in answer and "ANSWER: 0" in answer, answer


def test_only_the_dns_host_answers_on_port_53():
    # server1 runs no name server, and its firewall drops the query: it
    # times out (without the firewall it would be refused by ICMP)
    answer = dig(f"@{SUBNET}.11", "www.foobar.com", "A")
    assert "timed out" in answer and "refused" not in answer, answer
