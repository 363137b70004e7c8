#!/usr/bin/env bash
# Install (never start) the system programs the test-suite runs privately on loopback ports:
# mosquitto, PostgreSQL, Chromium with its driver and a CJK font.  Tests start their own instances.
# Arguments name a subset (`install-services.sh mosquitto`: what `make demo` needs to run the broker
# as deployed); none means everything the tests use.
set -euo pipefail
want=" ${*:-mosquitto postgresql chromium} "
need=()
if [[ $want == *" mosquitto "* ]]; then
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
fi
if [[ $want == *" postgresql "* ]]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi
if [[ $want == *" chromium "* ]]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  # a CJK font, or headless Chromium draws the console's Chinese as empty boxes in screenshots
  [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing ${need[*]}: run 'sudo apt-get install ${need[*]}' (tests needing them are skipped)" >&2
  exit 0
fi
echo "installing ${need[*]} …"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged services; the tests use private instances, so stop the system ones.
for svc in mosquitto postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
