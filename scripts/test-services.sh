#!/usr/bin/env bash
# Makes sure what `make test` needs is there: PostgreSQL, Redis and Mosquitto reachable on
# 127.0.0.1 (starting this machine's own servers if they are installed but stopped), and the
# protocol peers the tests run themselves (Net-SNMP's snmptrapd and tools, Mosquitto's tools),
# and the Chromium the console tests drive.
set -u

missing=()

need_packages=()
command -v snmptrapd >/dev/null 2>&1 || need_packages+=(snmptrapd)
command -v snmptranslate >/dev/null 2>&1 || need_packages+=(snmp)
command -v smilint >/dev/null 2>&1 || need_packages+=(smitools)
command -v mosquitto_passwd >/dev/null 2>&1 || need_packages+=(mosquitto)
# The console tests drive Debian's Chromium with Playwright (never a browser download).
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
# The benchmark test runs Alertmanager side by side with Pulse.
command -v prometheus-alertmanager >/dev/null 2>&1 || need_packages+=(prometheus-alertmanager)
# The IETF base MIB modules (SNMPv2-SMI, ...) that the MIB check needs: Debian's snmp packages
# leave them out for licence reasons, and in Debian main they come with erlang-snmp.
ls /usr/lib/erlang/lib/snmp-*/mibs/SNMPv2-SMI.mib >/dev/null 2>&1 || need_packages+=(erlang-snmp)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_packages[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null \
    || { echo "could not install ${need_packages[*]}; install them and run make test again" >&2; exit 1; }
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_port 5432 || missing+=("PostgreSQL on 127.0.0.1:5432 (Debian package postgresql)")
fi

if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
  fi
  wait_port 6379 || missing+=("Redis on 127.0.0.1:6379 (Debian package redis-server)")
fi

if ! port_open 1883; then
  if command -v mosquitto >/dev/null 2>&1; then
    echo "starting Mosquitto"
    if [ -f /etc/mosquitto/mosquitto.conf ]; then
      mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    else
      mosquitto -d -p 1883 || true
    fi
  fi
  wait_port 1883 || missing+=("Mosquitto on 127.0.0.1:1883 (Debian package mosquitto)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "make test needs these servers, which are not reachable:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "services ready: PostgreSQL, Redis, Mosquitto, snmptrapd, Chromium, Alertmanager"
