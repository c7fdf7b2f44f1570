"""The collection as Galaxy users get it: built by ansible-galaxy from
galaxy.yml, its tarball holds what a user runs (roles, modules, playbooks,
the rulebooks, the example inventory, the docs) and nothing of the lab (the
Molecule scenarios, the lab's scripts, inventories and secrets, the tests);
it installs with ansible-galaxy collection install, and from a directory
that knows nothing of this checkout its playbooks and modules are found by
FQCN in the installed copy."""

import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("ansible-galaxy") is None, reason="ansible-core is not installed here")

# What a user of the installed collection runs or reads.
SHIPPED = ("roles", "plugins", "playbooks", "extensions", "meta", "docs", "inventories/example", "site.yml",
           "README.md", "CHANGELOG.md", "LICENSE", "MANIFEST.json", "FILES.json")
# The lab's, and what must never leave the checkout.
NOT_SHIPPED = ("molecule", "scripts", "tests", ".ci", ".lab", ".venv", ".collections", ".cache", ".git",
               "inventories/lab", "inventories/lab-single", "inventories/lab-failover", "inventories/lab-tiers")


def run(argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **kwargs)
    assert done.returncode == 0, "%s\n%s\n%s" % (" ".join(argv), done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT)])
    tarballs = list(out.glob("distweb-infra-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def test_the_tarball_holds_what_users_run_and_nothing_of_the_lab(built):
    with tarfile.open(built) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    for path in SHIPPED:
        assert any(n == path or n.startswith(path + "/") for n in names), path
    for path in NOT_SHIPPED:
        assert not [n for n in names if n == path or n.startswith(path + "/")], path
    assert not [n for n in names if "__pycache__" in n or ".secrets" in n or n.endswith((".pem", ".key", ".retry"))]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("distweb", "infra")
    assert set(info["dependencies"]) == {"community.mysql", "community.crypto"}


def test_the_tarball_installs_and_runs_by_fqcn_from_a_clean_directory(built, tmp_path):
    collections = tmp_path / "collections"
    work = tmp_path / "work"
    work.mkdir()
    # no ansible.cfg of the checkout's, no .collections link: the installed
    # copy and the community collections that ansible ships are all it sees
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "tmp")
    env["ANSIBLE_HOME"] = str(tmp_path / "home")
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(built)], cwd=work, env=env)
    installed = collections / "ansible_collections" / "distweb" / "infra"
    assert (installed / "MANIFEST.json").is_file()
    found = run(["ansible-galaxy", "collection", "list", "distweb.infra", "--format", "json"], cwd=work, env=env)
    assert list(json.loads(found.stdout)) == [str(collections / "ansible_collections")], found.stdout
    inventory = installed / "inventories" / "example" / "hosts.yml"
    for playbook in ("distweb.infra.site", "distweb.infra.failover", "distweb.infra.restore"):
        run(["ansible-playbook", "-i", str(inventory), playbook, "--syntax-check"], cwd=work, env=env)
    doc = run(["ansible-doc", "-t", "module", "distweb.infra.mysql_failover", "--json"], cwd=work, env=env)
    assert "distweb.infra.mysql_failover" in json.loads(doc.stdout), doc.stdout[:500]
