# Shared helpers for scripts/lab, scripts/test and the benchmarks.
# Every function is idempotent: "already there" is success.
# shellcheck shell=bash

DISTWEB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTWEB_VENV="${DISTWEB_VENV:-$DISTWEB_ROOT/.venv}"
# The lab's platform: bookworm (Debian 12: MariaDB 10.11, HAProxy 2.6) or
# trixie (Debian 13: MariaDB 11.8, HAProxy 3.0).
DISTWEB_LAB_PLATFORM="${DISTWEB_LAB_PLATFORM:-bookworm}"
case "$DISTWEB_LAB_PLATFORM" in
  bookworm|trixie) ;;
  *) echo "DISTWEB_LAB_PLATFORM must be bookworm or trixie, not '$DISTWEB_LAB_PLATFORM'" >&2; exit 2 ;;
esac
# The lab image's tag: the platform and a hash of scripts/image/, so a
# changed Dockerfile makes a new image on a machine that has an older one
# (and a running lab keeps the image it was started from).
image_tag() {
  local hash
  hash="$(cd "$DISTWEB_ROOT/scripts/image" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
  echo "distweb/lab-node:$1-$hash"
}
DISTWEB_IMAGE="${DISTWEB_IMAGE:-$(image_tag "$DISTWEB_LAB_PLATFORM")}"
DISTWEB_STATE="${DISTWEB_STATE:-$DISTWEB_ROOT/.lab}"
export DISTWEB_ROOT DISTWEB_VENV DISTWEB_IMAGE DISTWEB_STATE DISTWEB_LAB_PLATFORM

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the control node needs (docker engine, image builder, clients).
ensure_host_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# promtool of Debian's prometheus package (the version the monitoring role
# installs), taken out of the .deb into .cache/promtool: no Prometheus is
# installed or started on this host. Exports PROMTOOL (its path) for the tests.
ensure_promtool() {
  local dest="$DISTWEB_ROOT/.cache/promtool"
  local bin="$dest/promtool"
  if [ ! -x "$bin" ]; then
    command -v apt-get >/dev/null 2>&1 || die "promtool comes from Debian's prometheus package: no apt-get here"
    local work
    work="$(mktemp -d)"
    log "unpacking promtool from Debian's prometheus package into $dest"
    if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
      as_root apt-get update -qq
      (cd "$work" && apt-get download -qq prometheus >/dev/null) || { rm -rf "$work"; die "apt-get download prometheus failed"; }
    fi
    dpkg -x "$work"/prometheus_*.deb "$work/root"
    mkdir -p "$dest"
    install -m 0755 "$work/root/usr/bin/promtool" "$bin"
    rm -rf "$work"
  fi
  "$bin" --version >/dev/null 2>&1 || die "$bin does not run"
  PROMTOOL="$bin"
  export PROMTOOL
}

ensure_docker() {
  if ! command -v dockerd >/dev/null 2>&1; then
    ensure_host_packages docker.io
  fi
  if docker info >/dev/null 2>&1; then return 0; fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl start docker
  else
    log "starting dockerd"
    as_root mkdir -p /var/log
    as_root sh -c 'setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &'
  fi
  for _attempt in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "the Docker engine did not start; see /var/log/dockerd.log"
}

# Whether the virtualenv in $1 holds what the requirements file $2 says now
# (the stamp stamp_venv wrote when it installed them).
venv_current() {
  [ -x "$1/bin/ansible-galaxy" ] && [ "$(cat "$1/.requirements.sha" 2>/dev/null)" = "$(sha256sum "$2" | cut -d' ' -f1)" ]
}

stamp_venv() {
  sha256sum "$2" | cut -d' ' -f1 > "$1/.requirements.sha"
}

ensure_venv() {
  venv_current "$DISTWEB_VENV" "$DISTWEB_ROOT/requirements-dev.txt" && return 0
  log "creating the Python virtualenv in $DISTWEB_VENV"
  python3 -m venv "$DISTWEB_VENV" 2>/dev/null || {
    ensure_host_packages python3-venv
    python3 -m venv "$DISTWEB_VENV"
  }
  "$DISTWEB_VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$DISTWEB_VENV/bin/pip" install -q -r "$DISTWEB_ROOT/requirements-dev.txt"
  stamp_venv "$DISTWEB_VENV" "$DISTWEB_ROOT/requirements-dev.txt"
}

# A second virtualenv with the newest ansible-core the collection is checked
# on (requirements-newest-core.txt), on the first Python 3.12 or later found;
# sets NEWEST_CORE_VENV. Returns 1 when there is no such Python here.
ensure_newest_core_venv() {
  local dir="$DISTWEB_ROOT/.cache/venv-newest-core"
  local requirements="$DISTWEB_ROOT/requirements-newest-core.txt"
  local python="" candidate
  NEWEST_CORE_VENV="$dir"
  export NEWEST_CORE_VENV
  venv_current "$dir" "$requirements" && return 0
  for candidate in python3.14 python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
  [ -n "$python" ] || return 1
  log "creating the newest ansible-core's virtualenv in $dir ($("$python" --version))"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install -q -r "$requirements"
  stamp_venv "$dir" "$requirements"
}

activate_venv() {
  ensure_venv
  # shellcheck disable=SC1091
  . "$DISTWEB_VENV/bin/activate"
  export ANSIBLE_CONFIG="$DISTWEB_ROOT/ansible.cfg"
  ensure_collection_link
}

# Make the checkout importable as distweb.infra without building it: playbooks
# use FQCNs, and ansible.cfg points collections_path at .collections.
ensure_collection_link() {
  local dir="$DISTWEB_ROOT/.collections/ansible_collections/distweb"
  mkdir -p "$dir"
  [ -L "$dir/infra" ] || ln -sfn ../../.. "$dir/infra"
}

# The lab image: pull debian:<platform> where a registry answers, otherwise
# build the base from Debian's packages with debootstrap.
ensure_image() {
  docker image inspect "$DISTWEB_IMAGE" >/dev/null 2>&1 && return 0
  local platform="$DISTWEB_LAB_PLATFORM"
  local base="debian:$platform"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    if timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
      log "pulled $base"
    else
      base="distweb/debian-base:$platform"
      if ! docker image inspect "$base" >/dev/null 2>&1; then
        log "no registry answered: building $base with debootstrap"
        ensure_host_packages debootstrap
        local root
        root="$(mktemp -d /var/tmp/distweb-rootfs.XXXXXX)"
        as_root debootstrap --variant=minbase "$platform" "$root" >/dev/null
        as_root tar -C "$root" -c . | docker import - "$base" >/dev/null
        as_root rm -rf "$root"
      fi
    fi
  fi
  log "building $DISTWEB_IMAGE from $base"
  docker build -q --build-arg "BASE=$base" -t "$DISTWEB_IMAGE" "$DISTWEB_ROOT/scripts/image" >/dev/null
}

# Run a command with the lab on another platform (bookworm or trixie): its
# image, made if missing, is the one the lab's containers start from.
with_platform() {
  local platform="$1"
  shift
  (
    DISTWEB_IMAGE="$(image_tag "$platform")"
    export DISTWEB_LAB_PLATFORM="$platform" DISTWEB_IMAGE
    ensure_image
    "$@"
  )
}
