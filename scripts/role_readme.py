"""Write the variables table of roles/<role>/README.md from the role's
meta/argument_specs.yml and defaults/main.yml, between the markers
<!-- BEGIN VARIABLES --> and <!-- END VARIABLES -->.

    python scripts/role_readme.py         rewrite every role README that has the markers
    python scripts/role_readme.py --check exit 1 if one is out of date
"""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN VARIABLES -->", "<!-- END VARIABLES -->"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def table(role_dir):
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())
    defaults_file = role_dir / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) or {} if defaults_file.is_file() else {}
    lines = ["| Variable | Default | What it does |", "| --- | --- | --- |"]
    for name, spec in specs["argument_specs"]["main"]["options"].items():
        if name in defaults:
            default = f"`{_cell(yaml.safe_dump(defaults[name], default_flow_style=True).strip().removesuffix('...').strip())}`"
        else:
            default = "**required**"
        description = spec.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        if spec.get("choices"):
            description += " One of: " + ", ".join(f"`{c}`" for c in spec["choices"]) + "."
        lines.append(f"| `{name}` | {default} | {_cell(description)} |")
    return "\n".join(lines)


def render(readme, role_dir):
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{table(role_dir)}\n{END}{tail}"


def main(argv):
    check = "--check" in argv
    stale = []
    for role_dir in sorted((ROOT / "roles").iterdir()):
        readme = role_dir / "README.md"
        if not readme.is_file() or BEGIN not in readme.read_text():
            continue
        new = render(readme, role_dir)
        if new != readme.read_text():
            stale.append(str(readme.relative_to(ROOT)))
            if not check:
                readme.write_text(new)
    if check and stale:
        print("out of date (run python scripts/role_readme.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
