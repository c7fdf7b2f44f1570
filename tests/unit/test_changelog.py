"""The changelog as antsibull-changelog keeps it: every fragment in
changelogs/fragments/ is valid (antsibull-changelog lint), and a trial
release of galaxy.yml's version, made in a copy, renders every fragment and
lists every module and filter of the collection as new in it, so that their
version_added matches the version about to be released."""

import os
import pathlib
import shutil
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **kwargs)
    assert done.returncode == 0, "%s\n%s\n%s" % (" ".join(argv), done.stdout[-3000:], done.stderr[-3000:])
    return done


def test_the_fragments_are_valid():
    fragments = sorted((ROOT / "changelogs" / "fragments").glob("*.yml"))
    assert fragments, "no changelog fragment"
    # ansible-lint takes a YAML file named like a playbook for one
    assert [f.name for f in fragments if "playbook" in f.name] == []
    done = run(["antsibull-changelog", "lint"], cwd=ROOT)
    assert done.stdout.strip() == "", done.stdout


def test_a_trial_release_lists_every_change_and_every_new_module(tmp_path):
    copy = tmp_path / "ansible_collections" / "distweb" / "infra"
    for part in ("galaxy.yml", "changelogs", "plugins", "meta"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part)
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy / part)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path)
    env["ANSIBLE_HOME"] = str(tmp_path / "home")
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    run(["antsibull-changelog", "release", "--version", version, "--date", "2026-12-03"], cwd=copy, env=env)
    changes = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())["releases"][version]
    written = [entry for fragment in sorted((ROOT / "changelogs" / "fragments").glob("*.yml"))
               for entries in yaml.safe_load(fragment.read_text()).values() for entry in entries]
    kept = [entry for section, entries in changes["changes"].items() for entry in entries]
    assert sorted(kept) == sorted(written)
    modules = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
    assert sorted(m["name"] for m in changes.get("modules", [])) == modules
    filters = {p["name"] for p in changes.get("plugins", {}).get("filter", [])}
    assert filters, changes.get("plugins")
    rendered = (copy / "CHANGELOG.md").read_text()
    for name in modules:
        assert "distweb\\.infra\\.%s" % name.replace("_", "\\_") in rendered, name
