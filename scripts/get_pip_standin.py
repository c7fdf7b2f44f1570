"""Stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test creates empty virtualenvs and fetches get-pip.py from a host
that is not reachable from every build machine; it documents saving the
script to ~/.ansible/test/cache/get_pip_<version>.py instead. This stand-in
(installed there by scripts/test) bootstraps pip from the standard library's
ensurepip, then installs what ansible-test asked for from the package index.
"""

import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    return subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])


if __name__ == "__main__":
    sys.exit(main())
