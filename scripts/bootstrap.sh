#!/usr/bin/env bash
# Installs what tagtrail needs on Debian 12/13: system packages (when missing), a venv in
# .venv and the project with its dev tools. Safe to run again; it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need_apt+=(influxdb)
command -v influx >/dev/null 2>&1 || need_apt+=(influxdb-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # the TLS tests make certificates
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)   # verifies deploy/systemd units
[ -x /usr/bin/chromium ] || need_apt+=(chromium)                # the web view's browser test
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)

PY=""
for cand in python3.11 python3.12 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1 &&
     "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then need_apt+=(python3 python3-venv); fi
if [ -n "$PY" ] && [ ! -d .venv ] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi

# pyzbar needs the zbar shared library: Debian 12 names it libzbar0, Debian 13 libzbar0t64.
if ! { dpkg-query -W -f='${Status}\n' libzbar0t64 libzbar0 2>/dev/null || true; } |
     grep -q "install ok installed"; then
  $SUDO apt-get update -qq
  if apt-cache show libzbar0t64 >/dev/null 2>&1; then need_apt+=(libzbar0t64); else need_apt+=(libzbar0); fi
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # the Debian package enables the service; tagtrail starts its own brokers, so that is optional
fi
if [ -z "$PY" ]; then PY=python3; fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.tagtrail-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing tagtrail and dev tools into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
