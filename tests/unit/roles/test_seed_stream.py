"""The replica seed's transport (roles/mysql_replica/files/distweb_seed_stream.py)
on loopback with certificates made here: the bytes arrive whole, only the
named source may send, the sender only sends to the named replica, and a
stream cut short is a failure, never a smaller seed."""

import datetime
import importlib.util
import io
import pathlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "mysql_replica" / "files" / "distweb_seed_stream.py"
spec = importlib.util.spec_from_file_location("distweb_seed_stream", SCRIPT)
stream = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stream)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, key, cert):
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and node certificates for server1, server4 and a stranger's CA."""
    root = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)

    def ca(cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def node(cn, ca_key, ca_cert, path):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write(path, key, cert)

    ca_key, ca_cert = ca("distweb private CA")
    _write(root / "ca", ca_key, ca_cert)
    for cn in ("server1", "server4", "lb1"):
        node(cn, ca_key, ca_cert, root / cn)
    other_key, other_cert = ca("someone else's CA")
    node("server1", other_key, other_cert, root / "forged")
    return root


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls(pki, name):
    return ["--cert", str(pki / f"{name}.crt"), "--key", str(pki / f"{name}.key"), "--ca", str(pki / "ca.crt")]


def start_receiver(pki, port, peer="server1", timeout=10):
    out, result = io.BytesIO(), {}
    args = stream.parse(["receive", "--port", str(port), "--peer", peer, "--bind", "127.0.0.1",
                         "--timeout", str(timeout)] + tls(pki, "server4"))
    thread = threading.Thread(target=lambda: result.setdefault("code", stream.receive(args, out)), daemon=True)
    thread.start()
    for _attempt in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()  # a probe: refused, then waiting on
            break
        except OSError:
            threading.Event().wait(0.02)
    return thread, out, result


def send(pki, port, data, peer="server4", cert="server1"):
    args = stream.parse(["send", "--host", "127.0.0.1", "--port", str(port), "--peer", peer, "--timeout", "10"]
                        + tls(pki, cert))
    return stream.send(args, io.BytesIO(data))


def test_the_seed_arrives_whole(pki):
    port, data = free_port(), bytes(range(256)) * 20000  # 5 MB
    thread, out, result = start_receiver(pki, port)
    assert send(pki, port, data) == 0
    thread.join(10)
    assert result == {"code": 0} and out.getvalue() == data


@pytest.mark.parametrize("cert", ["lb1", "forged"])
def test_only_the_named_source_may_send(pki, cert):
    port = free_port()
    thread, out, result = start_receiver(pki, port, timeout=3)
    try:  # whether the stranger notices the refusal at once varies: only the receiver's side is asserted
        send(pki, port, b"not a seed", cert=cert)
    except (ssl.SSLError, OSError):
        pass
    # the receiver took nothing from it and still waits for the source
    assert send(pki, port, b"the seed") == 0
    thread.join(10)
    assert result == {"code": 0} and out.getvalue() == b"the seed"


def test_the_sender_sends_only_to_the_named_replica(pki):
    port = free_port()
    thread, out, result = start_receiver(pki, port, timeout=2)
    assert send(pki, port, b"the seed", peer="server3") == 1
    thread.join(10)
    assert out.getvalue() == b""


def test_a_stream_cut_short_is_a_failure(pki):
    port = free_port()
    thread, out, result = start_receiver(pki, port)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "server1.crt"), str(pki / "server1.key"))
    context.check_hostname = False
    conn = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    conn.sendall(b"half a seed")
    conn.close()  # no close_notify: the sender died
    thread.join(10)
    assert result == {"code": 1}


def test_nobody_sending_is_a_timeout(pki):
    thread, out, result = start_receiver(pki, free_port(), timeout=1)
    thread.join(10)
    assert result == {"code": 2}
