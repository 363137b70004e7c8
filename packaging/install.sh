#!/usr/bin/env bash
# Install or upgrade the Taiqu gateway from this offline bundle (run as root on the gateway).
#
#   sudo ./install.sh            install/upgrade, enable the service (start it yourself)
#   sudo ./install.sh --start    … and (re)start it now
#
# Creates the system user taiqu-gateway (group dialout for the RS-485 adapters), a virtual
# environment in /opt/taiqu/venv from ./wheelhouse only (no network), /etc/taiqu with an example
# configuration (never overwritten), /var/lib/taiqu-gateway, and the systemd unit.
# An upgrade builds a new venv under /opt/taiqu/releases/ and then switches the /opt/taiqu/venv
# symlink, so a failed install leaves the running version in place.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${TAIQU_PREFIX:-/opt/taiqu}
PY=${PYTHON:-python3}
USER_NAME=taiqu-gateway
START=0
[[ "${1:-}" == "--start" ]] && START=1

die() { echo "install.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (sudo ./install.sh)"
command -v "$PY" >/dev/null || die "$PY not found: apt install python3 python3-venv"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is needed"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "python3-venv is missing: apt install python3-venv"
[[ -d "$HERE/wheelhouse" ]] || die "no wheelhouse/ next to install.sh: unpack the whole bundle"
(cd "$HERE" && sha256sum --quiet -c SHA256SUMS) || die "bundle files do not match SHA256SUMS"

if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/taiqu-gateway --no-create-home \
          --shell /usr/sbin/nologin "$USER_NAME"
fi
usermod -a -G dialout "$USER_NAME"

install -d -m 0755 "$PREFIX" "$PREFIX/docs" "$PREFIX/releases"
# Each release gets its own venv; /opt/taiqu/venv is a symlink switched atomically at the end.
RELEASE=$(sed -n 's/^name=//p' "$HERE/BUILD-INFO")-$(date +%Y%m%d%H%M%S)
TARGET="$PREFIX/releases/$RELEASE"
"$PY" -m venv "$TARGET"
if ! "$TARGET/bin/pip" install --quiet --no-index --find-links "$HERE/wheelhouse" taiqu \
    || ! "$TARGET/bin/python" -c 'import gateway, protocols'; then
  rm -rf "$TARGET"
  die "install failed; the previous version (if any) stays in place"
fi
"$TARGET/bin/python" -m compileall -q "$TARGET/lib" >/dev/null || true  # read-only at run time
if [[ -d "$PREFIX/venv" && ! -L "$PREFIX/venv" ]]; then mv "$PREFIX/venv" "$PREFIX/releases/legacy"; fi
ln -sfn "releases/$RELEASE" "$PREFIX/venv.tmp" && mv -T "$PREFIX/venv.tmp" "$PREFIX/venv"
# keep the two newest releases for a manual roll-back (ln -sfn releases/<old> /opt/taiqu/venv)
ls -1dt "$PREFIX"/releases/*/ | tail -n +3 | xargs -r rm -rf
install -m 0644 "$HERE"/docs/*.md "$PREFIX/docs/" 2>/dev/null || true

install -d -m 0750 -o root -g "$USER_NAME" /etc/taiqu
if [[ ! -f /etc/taiqu/gateway.toml ]]; then
  install -m 0640 -o root -g "$USER_NAME" "$HERE/gateway.example.toml" /etc/taiqu/gateway.toml
  echo "Edit /etc/taiqu/gateway.toml (gateway_id, broker, buses, meters) before starting."
fi
if [[ ! -f /etc/taiqu/gateway.env ]]; then
  install -m 0640 -o root -g "$USER_NAME" "$HERE/gateway.env.example" /etc/taiqu/gateway.env
fi
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" /var/lib/taiqu-gateway

install -m 0644 "$HERE/taiqu-gateway.service" /etc/systemd/system/taiqu-gateway.service
systemctl daemon-reload
systemctl enable taiqu-gateway.service
if [[ $START -eq 1 ]]; then
  systemctl restart taiqu-gateway.service
fi
echo "Installed $RELEASE in $PREFIX (venv -> releases/$RELEASE)."
echo "Check the configuration:  sudo -u $USER_NAME $PREFIX/venv/bin/taiqu gateway check-config --config /etc/taiqu/gateway.toml"
echo "Start and follow:         sudo systemctl start taiqu-gateway && journalctl -u taiqu-gateway -f"
