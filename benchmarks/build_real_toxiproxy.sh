#!/usr/bin/env bash
# Build a real Toxiproxy 2.12 server, the peer of the embedded one in the benchmarks and
# the API parity checks, from a checkout of its source, with Debian's Go toolchain and
# Debian's packaged Go libraries (no module download).
#
#   apt-get install -y golang-go golang-github-gorilla-mux-dev golang-github-rs-zerolog-dev \
#       golang-github-prometheus-client-golang-dev golang-github-urfave-cli-v2-dev \
#       golang-golang-x-term-dev golang-gopkg-tomb.v1-dev
#   benchmarks/build_real_toxiproxy.sh /path/to/toxiproxy-checkout [OUT]
#   OUT -host 127.0.0.1 -port 18474 &
#
# The checkout is read at tag v2.12.0 (git archive). Debian's zerolog is older than the
# one Toxiproxy pins: its CallerMarshalFunc takes no program counter, so the server's
# log-format hook is adapted (logging only; the proxy and API code are untouched).
set -euo pipefail
src=${1:?usage: build_real_toxiproxy.sh TOXIPROXY_CHECKOUT [OUT]}
out=${2:-/tmp/toxiproxy-server-2.12.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg="$work/src/github.com/Shopify/toxiproxy"
mkdir -p "$pkg"
git -C "$src" archive v2.12.0 | tar -x -C "$pkg"
ln -s . "$pkg/v2"  # the module's /v2 import path, in GOPATH mode
sed -i 's/func(pc uintptr, file string, line int) string {/func(file string, line int) string {/' \
    "$pkg/cmd/server/server.go"
cd "$pkg"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" go build \
    -ldflags "-X github.com/Shopify/toxiproxy/v2.Version=2.12.0" -o "$out" ./cmd/server
echo "built $out"
