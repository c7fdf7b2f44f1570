"""Every role's meta/argument_specs.yml mirrors its defaults/main.yml, and the
preflight entry point checks exactly what the main one checks."""

import pathlib

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def load(role, *parts):
    path = ROLES.joinpath(role, *parts)
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def test_every_role_has_a_spec():
    assert set(ROLE_NAMES) == {p.name for p in ROLES.iterdir() if p.is_dir()}


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_spec_mirrors_defaults(role):
    defaults = load(role, "defaults", "main.yml")
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        assert name in options, f"{role}: default {name} is not in the argument spec"
        spec = options[name]
        templated = isinstance(value, str) and ("{{" in value or "{%" in value)
        if "default" in spec or not templated:
            assert spec.get("default") == value, f"{role}: {name} default differs: {spec.get('default')!r} != {value!r}"
    for name, spec in options.items():
        assert name.startswith(role + "_") or name.startswith(role.split("_")[0] + "_"), f"{role}: {name} lacks the role prefix"
        if name not in defaults:
            assert spec.get("required"), f"{role}: {name} has no default and is not required"
        assert spec.get("description"), f"{role}: {name} has no description"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_preflight_checks_the_same_options(role):
    specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
    assert specs.get("preflight") == specs["main"]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_secrets_are_no_log(role):
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, spec in options.items():
        if "password" in name:
            assert spec.get("no_log") is True, f"{role}: {name} must be no_log"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_role_readme_lists_every_variable(role):
    readme = ROLES.joinpath(role, "README.md")
    assert readme.is_file(), f"{role} has no README.md"
    text = readme.read_text()
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    missing = [name for name in options if f"`{name}`" not in text]
    assert not missing, f"{role}/README.md does not document {missing}"


def test_generated_variable_tables_are_current():
    import importlib.util

    path = ROLES.parent / "scripts" / "role_readme.py"
    spec = importlib.util.spec_from_file_location("role_readme", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run scripts/role_readme.py"
