#!/bin/bash
# npm-deps.sh: installs the pinned npm packages of DIR (its package-lock.json) with npm ci, only when they changed.
# The browser tests need them (tests/browser: JsSIP, esbuild, playwright-core). npm comes with the
# machine's Node.js 20 package (Debian's own npm package conflicts with it: notes/browser.md).
set -u
dir=${1:?usage: npm-deps.sh DIR}
stamp="$dir/node_modules/.parley-lock"
# Up to date when the last npm ci here installed this very lockfile: nothing to do, nothing said.
cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null && exit 0
if ! command -v npm >/dev/null; then
	echo "make deps: npm is missing: install Node.js 20 or newer with its npm (the browser tests need it)" >&2
	exit 1
fi
echo "make deps: npm ci in $dir"
# --ignore-scripts: esbuild's install script only checks its binary, which comes in the
# @esbuild/linux-x64 package; no other package here has scripts.
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
	{ echo "make deps: npm ci in $dir failed" >&2; exit 1; }
cp "$dir/package-lock.json" "$stamp"
