"""The collection as Galaxy users get it: built by ansible-galaxy from
galaxy.yml, its tarball holds what a user runs (roles, modules, playbooks,
the rulebooks, the example inventory, the docs) and nothing of the lab (the
Molecule scenarios, the lab's scripts, inventories and secrets, the tests);
it installs with ansible-galaxy collection install, and from a directory
that knows nothing of this checkout its playbooks and modules are found by
FQCN in the installed copy. The example execution environment
(docs/execution-environment.yml) makes an ansible-builder context with the
tarball in it, and ansible-builder reads the collection's own needs
(meta/execution-environment.yml)."""

import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

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


def clean_env(tmp_path, collections):
    """No ansible.cfg of the checkout's, no .collections link: the installed
    copy and the community collections that ansible ships are all it sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # scripts/test, on the newest ansible-core: where the dependencies are
    extra = os.environ.get("DISTWEB_DEPENDENCY_COLLECTIONS")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections) + (os.pathsep + extra if extra else "")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "tmp")
    env["ANSIBLE_HOME"] = str(tmp_path / "home")
    return env


def install(built, tmp_path):
    collections = tmp_path / "collections"
    work = tmp_path / "work"
    work.mkdir(parents=True)
    env = clean_env(tmp_path, collections)
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(built)], cwd=work, env=env)
    installed = collections / "ansible_collections" / "distweb" / "infra"
    assert (installed / "MANIFEST.json").is_file()
    return collections, installed, work, env


def test_the_tarball_installs_and_runs_by_fqcn_from_a_clean_directory(built, tmp_path):
    collections, installed, work, env = install(built, tmp_path)
    found = run(["ansible-galaxy", "collection", "list", "distweb.infra", "--format", "json"], cwd=work, env=env)
    assert list(json.loads(found.stdout)) == [str(collections / "ansible_collections")], found.stdout
    version = run(["ansible-playbook", "--version"], cwd=work, env=env).stdout.splitlines()[0]
    print("checked with", version)
    inventory = installed / "inventories" / "example" / "hosts.yml"
    for playbook in ("distweb.infra.site", "distweb.infra.failover", "distweb.infra.restore"):
        run(["ansible-playbook", "-i", str(inventory), playbook, "--syntax-check"], cwd=work, env=env)
    doc = run(["ansible-doc", "-t", "module", "distweb.infra.mysql_failover", "--json"], cwd=work, env=env)
    assert "distweb.infra.mysql_failover" in json.loads(doc.stdout), doc.stdout[:500]


def test_an_execution_environment_context_holds_the_collection_and_its_needs(built, tmp_path):
    definition = (ROOT / "docs" / "execution-environment.yml").read_text()
    assert built.name in definition, "docs/execution-environment.yml names another version's tarball than %s" % built.name
    shutil.copy(built, tmp_path / built.name)
    (tmp_path / "execution-environment.yml").write_text(definition)
    env = clean_env(tmp_path, tmp_path / "none")
    run(["ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context"], cwd=tmp_path, env=env)
    build = tmp_path / "context" / "_build"
    assert (build / "collections" / built.name).read_bytes() == built.read_bytes()
    wanted = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert wanted == [{"name": "/build/collections/" + built.name, "type": "file"}]
    steps = (tmp_path / "context" / "Dockerfile").read_text().splitlines()
    copied = steps.index("COPY _build /build")
    installs = [i for i, step in enumerate(steps) if "ansible-galaxy collection install" in step]
    assert installs and installs[0] > copied, steps
    # what the image gets from the collection itself, as the build's own
    # introspection reads it from the installed collection
    collections, dummy, work, env = install(built, tmp_path / "installed")
    found = run(["ansible-builder", "introspect", str(collections)], cwd=work, env=env)
    needs = yaml.safe_load(found.stdout)
    assert {line.split()[0] for line in needs["python"]} == {"cryptography>=3.3", "PyMySQL>=1.0"}, needs
    assert "openssh-client [platform:dpkg]  # from collection distweb.infra" in needs["system"], needs


def test_the_oldest_ansible_core_claimed_is_the_one_tested():
    claimed = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    pinned = [line.split("==")[1].strip() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
              if line.startswith("ansible-core==")]
    assert len(pinned) == 1, pinned
    major_minor = ".".join(pinned[0].split(".")[:2])
    assert claimed == ">=%s.0" % major_minor, (claimed, pinned)
    automation = yaml.safe_load((ROOT / "roles" / "automation" / "defaults" / "main.yml").read_text())
    assert "ansible-core==%s" % pinned[0] in automation["automation_pip_packages"]
    # every role's Galaxy metadata claims the same oldest version
    for meta in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        role = yaml.safe_load(meta.read_text())["galaxy_info"]
        assert role["min_ansible_version"] == major_minor, (meta, role["min_ansible_version"])
