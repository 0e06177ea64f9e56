# shellcheck shell=bash
# Sourced by the ops/ scripts: repository root, messages, the exed system user,
# and where Debian keeps the PostgreSQL server binaries.

EXED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXED_PROG=$(basename "$0")
# Relative paths in EXED_BUILD_DIR are relative to the caller's directory.
EXED_BUILD_DIR=$(realpath -m "${EXED_BUILD_DIR:-$EXED_ROOT/build}")
EXED_USER=exed
EXED_HOME=/var/lib/exed

log() { printf '%s: %s\n' "$EXED_PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$EXED_PROG" "$*" >&2; exit 1; }
is_root() { [[ $EUID -eq 0 ]]; }

# The unprivileged system user that PostgreSQL (and later QEMU) run as when we are root.
ensure_exed_user() {
  is_root || return 0
  if ! id -u "$EXED_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$EXED_HOME" --no-create-home \
      --shell /usr/sbin/nologin --comment "exed service user" "$EXED_USER"
    log "created system user $EXED_USER"
  fi
  if [[ ! -d $EXED_HOME ]]; then
    install -d -o "$EXED_USER" -g "$EXED_USER" -m 0750 "$EXED_HOME"
  fi
}

# Newest /usr/lib/postgresql/<version>/bin, or the one matching $1 (a PG_VERSION) if installed.
pg_bindir() {
  local want=${1:-} dir
  if [[ -n ${EXED_PG_BIN:-} ]]; then echo "$EXED_PG_BIN"; return; fi
  if [[ -n $want && -x /usr/lib/postgresql/$want/bin/postgres ]]; then
    echo "/usr/lib/postgresql/$want/bin"; return
  fi
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  [[ -n $dir && -x $dir/postgres ]] ||
    die "PostgreSQL server binaries not found under /usr/lib/postgresql (run ops/setup)"
  echo "$dir"
}
