#!/usr/bin/env bash
# Installs the Debian packages a task needs, if missing: deps.sh dev|test|perf
# Real parts only (etcd, Docker, ...): the project never mocks them, so they must be here.
set -euo pipefail

case "${1:-}" in
  dev)  pkgs=(etcd-server etcd-client bind9-dnsutils docker.io docker-registry busybox-static iproute2 openssh-client pebble bird2) ;;
  test) pkgs=(etcd-server etcd-client bind9-dnsutils docker.io docker-registry busybox-static iproute2 chromium openssh-client openssh-sftp-server pebble bird2) ;;
  perf) pkgs=(etcd-server etcd-client knot dnsperf bind9-dnsutils wrk nghttp2-client nginx-light docker.io busybox-static iproute2 openssh-client openssh-server) ;;
  *) echo "usage: $0 dev|test|perf" >&2; exit 2 ;;
esac

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK is required and 'dotnet' is not on PATH (https://learn.microsoft.com/dotnet/core/install/linux-debian)" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "==> installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system etcd on 2379 when it installs the package; EdgeEru starts its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
fi
# Likewise docker-registry on :5000: tests start their own (ImageRegistry), with TLS and auth.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
echo "==> installed: ${missing[*]}"
