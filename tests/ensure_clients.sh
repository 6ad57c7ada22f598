#!/usr/bin/env bash
# The client suite (tests/clients/) runs Node clients and the coding CLIs (claude, codex) at the
# versions tests/clients/package-lock.json pins. Installs Debian's nodejs and npm if the machine
# lacks them, then `npm ci` when node_modules is missing or older than package.json or the lockfile.
set -euo pipefail
cd "$(dirname "$0")/clients"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node or npm not found; installing Debian's nodejs and npm packages" >&2
  AS_ROOT=()
  [ "$(id -u)" = 0 ] || AS_ROOT=(sudo)
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "tests/ensure_clients.sh: $tool is still missing; install Node.js 18 or newer" >&2; exit 1; }
done
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  echo "tests/ensure_clients.sh: the client suite needs Node.js 18 or newer, found $(node --version)" >&2
  exit 1
fi
installed=node_modules/.package-lock.json  # npm ci writes it last
if [ ! -f "$installed" ] || [ package-lock.json -nt "$installed" ] || [ package.json -nt "$installed" ]; then
  echo "installing the client suite's Node packages (tests/clients/package-lock.json)" >&2
  # No install script runs: every package here ships ready to run (the CLIs' binaries are packages).
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
fi
