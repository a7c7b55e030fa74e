#!/bin/bash
# deps.sh: installs the Debian packages named on the command line that are not installed yet.
set -u
missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "make deps: these Debian packages are missing: ${missing[*]}" >&2
	echo "make deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "make deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "make deps: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || \
	apt-get install -y --no-install-recommends ${missing[*]} || { echo "make deps: apt-get install failed" >&2; exit 1; }
