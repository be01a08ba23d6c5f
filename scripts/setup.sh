#!/bin/sh
# Installs what building and testing emperor needs on a fresh Debian 12
# machine, skipping whatever is already there. Run as root (CI is root).
#   scripts/setup.sh        build needs: a Go toolchain
#   scripts/setup.sh test   plus real uWSGI and Python for interop tests
set -eu

need_apt=""
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
	if [ -z "$need_apt" ]; then
		need_apt=1
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Go: /usr/local/go if present; otherwise Debian's golang, which fetches the
# toolchain go.mod asks for through the module proxy (GOTOOLCHAIN=auto).
if ! have go && [ -x /usr/local/go/bin/go ]; then
	echo "setup: add /usr/local/go/bin to PATH" >&2
elif ! have go; then
	echo "setup: installing Go from Debian" >&2
	apt_install golang-go ca-certificates
fi

if [ "${1:-}" = test ]; then
	if ! have uwsgi || [ ! -e /usr/lib/uwsgi/plugins/python3_plugin.so ]; then
		echo "setup: installing uwsgi-core and uwsgi-plugin-python3" >&2
		apt_install uwsgi-core uwsgi-plugin-python3
	fi
	if ! have python3; then
		apt_install python3
	fi
fi
