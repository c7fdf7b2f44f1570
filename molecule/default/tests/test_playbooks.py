"""The playbook itself on the converged lab: check mode tells the truth, and
the built, installed collection runs by its FQCN and changes nothing."""

from conftest import changed_per_host
from labclient import INVENTORY, PROJECT, changed_tasks, playbook, run


def test_check_mode_on_the_converged_lab_reports_no_change():
    result = playbook("site.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = changed_per_host(result.stdout)
    assert set(changed) == {"lb1", "server1", "server2", "server3"}
    assert changed == dict.fromkeys(changed, 0), (changed, changed_tasks(result.stdout))


def test_the_installed_collection_runs_by_its_fqcn(tmp_path):
    build = run("ansible-galaxy", "collection", "build", str(PROJECT), "--output-path", str(tmp_path))
    assert build.returncode == 0, build.stderr
    tarball = next(tmp_path.glob("distweb-infra-*.tar.gz"))
    collections = tmp_path / "collections"
    install = run(
        "ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections), "--no-deps", "--force"
    )
    assert install.returncode == 0, install.stderr
    installed = collections / "ansible_collections" / "distweb" / "infra"
    assert (installed / "playbooks" / "site.yml").is_file()
    assert not (installed / ".venv").exists() and not (installed / ".collections").exists()

    result = run(
        "ansible-playbook",
        "-i",
        str(INVENTORY),
        "distweb.infra.site",
        env={"ANSIBLE_COLLECTIONS_PATH": str(collections)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    listed = run("ansible-galaxy", "collection", "list", "distweb.infra", env={"ANSIBLE_COLLECTIONS_PATH": str(collections)})
    assert str(collections / "ansible_collections") in listed.stdout, listed.stdout
    changed = changed_per_host(result.stdout)
    assert changed == {"lb1": 0, "server1": 0, "server2": 0, "server3": 0}, (changed, changed_tasks(result.stdout))
