"""HTTPS at the load balancers, seen from the client container outside the
cluster: a 301 from plain HTTP, HSTS, the lab CA's certificate for the site
name, TLS 1.2 and 1.3 only with strong ciphers (sslscan), and the client's
address reaching nginx even when it sends a forged X-Forwarded-For; ACME
challenges let through the redirect, and a renewed certificate deployed as
the README says with no failed request, and a connection kept alive across
a reload answered, not dropped."""

import datetime
import http.client
import json
import re
import secrets
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from labclient import (INVENTORY, LOAD_BALANCERS, VIP, VIP_SITE, ReadLoad, WriteLoad, client, container, docker, playbook,
                       recap, run, secrets_dir, wait_for)


def test_plain_http_is_redirected_to_https():
    out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"http://{VIP}/api/records?limit=1")
    assert out.stdout == f"301 https://{VIP}/api/records?limit=1", out.stdout + out.stderr


def test_https_answers_with_hsts_and_a_certificate_for_the_site_name(client_ca):
    out = client("curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", client_ca,
                 "--resolve", f"www.foobar.com:443:{VIP}", "https://www.foobar.com/health")
    assert out.returncode == 0, out.stderr
    headers = out.stdout.lower()
    assert re.search(r"^http/\S+ 200", headers, re.M)
    assert re.search(r"^strict-transport-security: max-age=63072000(;|\s*$)", headers, re.M), headers


@pytest.fixture(scope="module")
def sslscan():
    out = client("sslscan", "--no-colour", f"{VIP}:443", timeout=300)
    assert out.returncode == 0, out.stderr
    print("\n" + out.stdout)
    return out.stdout


def test_only_tls_1_2_and_1_3_are_offered(sslscan):
    protocols = dict(re.findall(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)", sslscan, re.M))
    assert protocols == {"SSLv2": "disabled", "SSLv3": "disabled", "TLSv1.0": "disabled",
                         "TLSv1.1": "disabled", "TLSv1.2": "enabled", "TLSv1.3": "enabled"}


def test_no_weak_cipher_is_accepted(sslscan):
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[23])\s+(\d+) bits\s+(\S+)", sslscan, re.M)
    assert ciphers, "sslscan listed no cipher"
    # Every accepted cipher is one of those (none in another version or form).
    assert len(ciphers) == len(re.findall(r"^(?:Preferred|Accepted)\s", sslscan, re.M)), sslscan
    for version, bits, name in ciphers:
        assert int(bits) >= 128, name
        if version == "TLSv1.3":
            assert name in {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}, name
        else:  # forward secret and AEAD only: no RSA key exchange, CBC, RC4, 3DES, NULL or export
            assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
    assert "Insecure session renegotiation supported" not in sslscan


def test_nginx_sees_the_client_address_and_not_a_forged_one(client_ca):
    probe = secrets.token_hex(8)
    out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", client_ca,
                 "-H", "X-Forwarded-For: 203.0.113.7", f"https://{VIP}/?probe={probe}")
    assert out.stdout == "200", out.stdout + out.stderr
    lines = []
    for server in ("server1", "server2", "server3"):
        log = docker("exec", container(server), "grep", "-h", probe, "/var/log/nginx/access.log", check=False).stdout
        lines += log.splitlines()
    assert len(lines) == 1, lines
    client_address = VIP.rsplit(".", 1)[0] + ".200"
    assert lines[0].startswith(client_address + " "), lines[0]
    assert lines[0].rstrip().endswith(" https"), f"the scheme nginx logged is not https: {lines[0]}"


def words(result):
    """The run's output with every line fold and indent made one space."""
    return " ".join((result.stdout + result.stderr).split())


def assert_nothing_changed(result):
    """The run's recap lists hosts, every one with changed=0."""
    assert "PLAY RECAP" in result.stdout, result.stdout[-3000:]
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    changed = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.M)
    assert changed and all(n == "0" for dummy, n in changed), recap


def test_a_key_that_does_not_match_the_certificate_stops_the_run_before_any_change():
    wrong_key = secrets_dir() / "pki" / "server1.key"
    result = playbook("site.yml", "-e", f"haproxy_tls_key_src={wrong_key}")
    assert result.returncode != 0
    assert "The key does not belong to the certificate" in words(result), result.stdout[-3000:]
    assert_nothing_changed(result)


def test_a_missing_certificate_stops_the_run_before_any_change():
    result = playbook("site.yml", "-e", "haproxy_tls_certificate_src=/nonexistent/site.crt")
    assert result.returncode != 0
    assert "Not found on the control node: /nonexistent/site.crt" in words(result), result.stdout[-3000:]
    assert_nothing_changed(result)


ACME_ROOT = "/run/distweb-acme-test"


def acme_get(path):
    """Status and body of a plain-HTTP request for ``path`` at the virtual IP."""
    out = client("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", f"http://{VIP}{path}")
    body, dummy, status = out.stdout.rpartition("\n")
    return status, body


def test_acme_challenges_pass_the_redirect_to_the_responder_and_nothing_else_does():
    # An ACME client's HTTP-01 responder, played by Python's http.server on
    # 127.0.0.1:8402 of both load balancers (haproxy_acme_challenge_server in
    # the lab's variables): a public CA asks for the token over plain HTTP.
    token = secrets.token_urlsafe(24)
    proof = f"{token}.{secrets.token_urlsafe(16)}"
    serve = (f"mkdir -p {ACME_ROOT}/.well-known/acme-challenge && printf %s {proof} > {ACME_ROOT}/.well-known/acme-challenge/{token}"
             f" && (setsid python3 -m http.server 8402 --bind 127.0.0.1 --directory {ACME_ROOT} >/dev/null 2>&1 &)")
    try:
        for lb in ("lb1", "lb2"):
            docker("exec", container(lb), "sh", "-c", serve)
        deadline = time.monotonic() + 30
        while acme_get(f"/.well-known/acme-challenge/{token}") != ("200", proof) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert acme_get(f"/.well-known/acme-challenge/{token}") == ("200", proof)
        # an unknown token is the responder's 404, not the app's and not a redirect
        status, body = acme_get("/.well-known/acme-challenge/unknown")
        assert status == "404" and "records" not in body, body
        # everything else is still redirected to HTTPS
        assert acme_get("/.well-known/other")[0] == "301"
        assert acme_get("/api/records?limit=1")[0] == "301"
    finally:
        for lb in ("lb1", "lb2"):
            docker("exec", container(lb), "sh", "-c", f"pkill -f 'http.server 8402' ; rm -rf {ACME_ROOT}", check=False)
    # with no responder listening the challenge fails (503): it is still not
    # redirected to HTTPS nor sent to the app
    deadline = time.monotonic() + 10
    while acme_get(f"/.well-known/acme-challenge/{token}")[0] != "503" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert acme_get(f"/.well-known/acme-challenge/{token}")[0] == "503"


def renewed_certificate(lb, directory):
    """A new certificate for ``lb`` from the lab CA, as a renewal brings it:
    the same key, subject and names, a new serial and validity; its path and
    serial."""
    pki = secrets_dir() / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    old = x509.load_pem_x509_certificate((pki / f"{lb}.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{lb}.key").read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=90)))
    for extension in old.extensions:
        if extension.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    new = builder.sign(ca_key, hashes.SHA256())
    path = directory / f"{lb}.crt"
    path.write_bytes(new.public_bytes(serialization.Encoding.PEM))
    return path, new.serial_number


def lb_address(lb):
    """``lb``'s own address on the lab network (not the virtual IP)."""
    return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container(lb)).stdout.strip()


def unverified_tls():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served_serial(lb):
    """The serial of the certificate ``lb`` serves for the site name (read,
    not verified: the test compares it)."""
    context = unverified_tls()
    with socket.create_connection((lb_address(lb), 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="www.foobar.com") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_a_renewed_certificate_is_deployed_as_the_readme_says_and_fails_no_request(tmp_path, client_ca):
    # What the README's ACME deploy hook runs once a certificate is renewed:
    # site.yml limited to the load balancers, with a fact cache (filled here
    # as an earlier full run would have), under HTTPS reads and writes
    # through the virtual IP.
    renewed = {lb: renewed_certificate(lb, tmp_path) for lb in LOAD_BALANCERS}
    cache = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
             "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    filled = run("ansible", "-i", str(INVENTORY), "all", "-m", "ansible.builtin.setup", "-a", "gather_subset=min,network",
                 env=cache)
    assert filled.returncode == 0, filled.stdout[-3000:] + filled.stderr[-2000:]
    with ReadLoad(site=VIP_SITE, workers=4, max_seconds=600) as reads, WriteLoad(site=VIP_SITE, max_seconds=600) as writes:
        wait_for(lambda: len(writes.acknowledged) >= 20, 60, what="the load to flow")
        result = playbook("site.yml", "--limit", "loadbalancers", "-e",
                          json.dumps({"haproxy_tls_certificate_src": f"{tmp_path}/{{{{ inventory_hostname }}}}.crt"}), env=cache)
        acknowledged = len(writes.acknowledged)
        wait_for(lambda: len(writes.acknowledged) >= acknowledged + 20, 60, what="writes after the reload")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    changed = {host for host, counts in recap(result.stdout).items() if counts["changed"]}
    assert changed == set(LOAD_BALANCERS), recap(result.stdout)
    print(f"\ncertificate renewal: GET {reads.failed} failed of {len(reads.attempts)}, "
          f"POST {writes.failed} failed of {len(writes.attempts)}")
    assert reads.failed == 0, f"GETs failed during the reload: {reads.errors[:5]}"
    assert writes.failed == 0, f"POSTs failed during the reload: {writes.errors[:5]}"
    for lb, (dummy, serial) in renewed.items():
        assert served_serial(lb) == serial, f"{lb} still serves the old certificate"
    # the renewed certificate verifies for the site name against the lab CA
    out = client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", client_ca,
                 "--resolve", f"www.foobar.com:443:{VIP}", "https://www.foobar.com/health")
    assert out.stdout == "200", out.stdout + out.stderr


def haproxy_workers(lb):
    """The pids of the HAProxy workers on ``lb``: the children of the master
    process systemd started, the old ones still draining after a reload
    included."""
    master = docker("exec", container(lb), "systemctl", "show", "--property=MainPID", "--value", "haproxy").stdout.strip()
    return set(docker("exec", container(lb), "pgrep", "-P", master, check=False).stdout.split())


def test_a_connection_kept_alive_across_a_reload_gets_its_next_answer():
    # Browsers and HTTP client libraries keep a connection open between
    # requests and send the next one on it without a retry if it fails. A
    # reload must not close such an idle connection under them: the old
    # process answers the next request on it, with "Connection: close",
    # and only then lets it go (it failed GETs in the renewal test).
    lb = LOAD_BALANCERS[0]
    connection = http.client.HTTPSConnection(lb_address(lb), 443, timeout=10, context=unverified_tls())
    headers = {"Host": "www.foobar.com"}
    try:
        connection.request("GET", "/health", headers=headers)
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and not first.will_close, first.headers
        before = haproxy_workers(lb)
        docker("exec", container(lb), "systemctl", "reload", "haproxy")
        wait_for(lambda: haproxy_workers(lb) - before, 30, what="the reloaded HAProxy's new worker")
        try:
            connection.request("GET", "/health", headers=headers)
            second = connection.getresponse()
            second.read()
        except (http.client.HTTPException, OSError) as exc:
            pytest.fail(f"the reload dropped a kept-alive connection: {exc!r}")
    finally:
        connection.close()
    assert second.status == 200
    # answered by the draining process, which closes the connection after it
    assert second.will_close, second.headers
