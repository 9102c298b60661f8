#!/bin/sh
# Installs the services the scale-out tests run against, when they are missing:
# HAProxy (PROXY protocol in front of serveWorkers) and redis-server (chat across
# processes). Debian/Ubuntu packages; needs root (or sudo) for apt-get. The tests
# start their own instances on free ports with their own config in a temp dir: this
# script only installs, it starts nothing.
set -eu
missing=""
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -z "$missing" ]; then
  echo "ci-services: haproxy and redis-server are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-services: missing:$missing, and there is no apt-get here: install them by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ci-services: missing:$missing; need root or sudo to install them" >&2
    exit 1
  fi
fi
echo "ci-services: installing$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian's packages start a system-wide service where an init system runs; the tests
# do not use it (they start their own on free ports), so it is left as the package set it.
command -v haproxy >/dev/null && command -v redis-server >/dev/null
echo "ci-services: ready"
