#!/usr/bin/env bash
# The browser tests (tests/browser/) drive Debian's Chromium through Playwright, which never
# downloads a browser of its own here; install the package if the machine lacks it.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  echo "chromium not found; installing Debian's chromium package" >&2
  AS_ROOT=()
  [ "$(id -u)" = 0 ] || AS_ROOT=(sudo)
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
