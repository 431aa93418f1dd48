# Shared by scripts/serve and scripts/test: a Python virtual environment with the
# locked dependencies, installed only when the lock file changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { echo "cannot install $*: no apt-get; install them by hand" >&2; exit 1; }
  if [ "$APT_UPDATED" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing $* from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
  local python=${PYTHON:-python3}
  command -v "$python" >/dev/null || apt_install python3
  if [ ! -x "$PY" ]; then
    if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
      apt_install python3-venv
    fi
    log "creating $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.ocore-lock.sha256"
  local want
  want=$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing locked dependencies (requirements.lock)"
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.lock"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT"
    echo "$want" > "$stamp"
  fi
}
