#!/usr/bin/env bash
# Installs the Redis server the redis_sessions example runs against (Debian/Ubuntu),
# unless one is already on PATH. Uses sudo only when not root.
set -euo pipefail
command -v redis-server >/dev/null && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends redis-server
