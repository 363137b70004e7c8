#!/usr/bin/env bash
# Build the offline install bundle for field gateways (they have no PyPI):
#
#   taiqu-gateway-<version>-<arch>.tar.gz
#     wheelhouse/          the taiqu wheel + its base dependencies (no head-end extras)
#     install.sh           creates the user, the venv (--no-index), directories; enables the unit
#     taiqu-gateway.service, gateway.example.toml, gateway.env.example, docs/, BUILD-INFO, SHA256SUMS
#
# Wheels with compiled code (pydantic-core …) must match the Pi: build on a like machine
# (aarch64 / armv7l, same Python minor version), or cross-download binary wheels with
#   --platform manylinux_2_36_aarch64 --python-version 3.11
# (see docs/install-gateway.md).  --no-deps builds only the taiqu wheel (fast; for tests).
#
# Usage: scripts/build-gateway-bundle.sh [--out DIR] [--python PY] [--no-deps]
#                                        [--platform TAG --python-version X.Y]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/dist"
PY=python3
NO_DEPS=0
PLATFORM=""
PYVER=""

die() { echo "build-gateway-bundle: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --no-deps) NO_DEPS=1; shift ;;
    --platform) PLATFORM=$2; shift 2 ;;
    --python-version) PYVER=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n "$PLATFORM" && -z "$PYVER" ]] && die "--platform needs --python-version (e.g. 3.11)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is older than Python 3.11"

VERSION=$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")
ARCH=${PLATFORM:-$(uname -m)}
NAME="taiqu-gateway-$VERSION-$ARCH"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
BUNDLE="$STAGE/$NAME"
mkdir -p "$BUNDLE/wheelhouse" "$BUNDLE/docs" "$OUT"

# The taiqu wheel itself is pure Python: build it here whatever the target, from a clean copy of
# the source (tracked and new files, nothing ignored), so a stale build/ directory never leaks in.
SRC="$STAGE/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
     | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
     | tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
  tar -C "$ROOT" --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' -cf - . \
    | tar -C "$SRC" -xf -
fi
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$BUNDLE/wheelhouse" "$SRC"
if [[ $NO_DEPS -eq 0 ]]; then
  DEPS="$STAGE/requirements.txt"
  "$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$ROOT/pyproject.toml" > "$DEPS"
  if [[ -n "$PLATFORM" ]]; then
    "$PY" -m pip download --quiet --only-binary=:all: --platform "$PLATFORM" \
      --python-version "$PYVER" --implementation cp --dest "$BUNDLE/wheelhouse" -r "$DEPS"
  else
    "$PY" -m pip wheel --quiet --wheel-dir "$BUNDLE/wheelhouse" -r "$DEPS"
  fi
fi

install -m 0755 "$ROOT/packaging/install.sh" "$BUNDLE/install.sh"
install -m 0644 "$ROOT/systemd/taiqu-gateway.service" "$BUNDLE/taiqu-gateway.service"
install -m 0644 "$ROOT/examples/gateway.toml" "$BUNDLE/gateway.example.toml"
install -m 0644 "$ROOT/packaging/gateway.env.example" "$BUNDLE/gateway.env.example"
for doc in install-gateway.md gateway-operations.md; do
  [[ -f "$ROOT/docs/$doc" ]] && install -m 0644 "$ROOT/docs/$doc" "$BUNDLE/docs/$doc"
done
{
  echo "name=$NAME"
  echo "version=$VERSION"
  echo "arch=$ARCH"
  echo "python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')${PYVER:+ (wheels for $PYVER)}"
  echo "deps=$([[ $NO_DEPS -eq 1 ]] && echo none || echo base)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$BUNDLE/BUILD-INFO"
(cd "$BUNDLE" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)

tar -C "$STAGE" -czf "$OUT/$NAME.tar.gz" "$NAME"
echo "$OUT/$NAME.tar.gz"
