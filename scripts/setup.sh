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

# Go: go.mod asks for a newer Go than Debian 12 packages (1.19), and a Go
# that old cannot switch toolchains by itself. So: use /usr/local/go when it
# is there; otherwise install Debian's golang-go and let it download the
# toolchain go.mod names as a module, through the module proxy, into
# /usr/local/go.
if [ ! -x /usr/local/go/bin/go ]; then
	have go || apt_install golang-go ca-certificates
	want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
	arch=$(dpkg --print-architecture)
	echo "setup: installing Go $want into /usr/local/go" >&2
	cache=$(mktemp -d)
	dir=$(cd "$cache" && GOFLAGS= GOTOOLCHAIN=local GOMODCACHE="$cache/mod" \
		go mod download -json "golang.org/toolchain@v0.0.1-go$want.linux-$arch" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "setup: could not fetch Go $want" >&2; exit 1; }
	cp -R "$dir" /usr/local/go
	chmod -R u+w /usr/local/go
	chmod a+x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*
	chmod -R u+w "$cache" && rm -rf "$cache"
fi

if [ "${1:-}" = test ]; then
	if ! have uwsgi || [ ! -e /usr/lib/uwsgi/plugins/python3_plugin.so ]; then
		echo "setup: installing uwsgi-core and uwsgi-plugin-python3" >&2
		apt_install uwsgi-core uwsgi-plugin-python3
	fi
	if ! have python3; then
		apt_install python3
	fi
	# promtool checks that /metrics stays a valid scrape whatever the
	# vassals' names (issue 12).
	if ! have promtool; then
		echo "setup: installing prometheus (for promtool)" >&2
		apt_install prometheus
	fi
	# Issue 6 (amqp:// and zmq:// monitors): the interop tests publish with
	# Debian's pika and push with Debian's pyzmq (libzmq), into a local
	# RabbitMQ on 127.0.0.1:5672 (guest/guest), started here if it is down.
	if [ ! -d /usr/lib/python3/dist-packages/pika ] || [ ! -d /usr/lib/python3/dist-packages/zmq ]; then
		echo "setup: installing python3-pika and python3-zmq" >&2
		apt_install python3-pika python3-zmq
	fi
	if ! have rabbitmq-server && [ ! -x /usr/sbin/rabbitmq-server ]; then
		echo "setup: installing rabbitmq-server" >&2
		apt_install rabbitmq-server
	fi
	if [ -x /usr/sbin/rabbitmqctl ] && ! /usr/sbin/rabbitmqctl -q status >/dev/null 2>&1; then
		echo "setup: starting RabbitMQ" >&2
		/usr/sbin/rabbitmq-server -detached || true
		/usr/sbin/rabbitmqctl await_startup >/dev/null 2>&1 || true
	fi
fi

# Issue 5 (pg:// and mongodb://): the tests use the machine's PostgreSQL
# (127.0.0.1:5432) and build their own MongoDB-wire server (internal/mongowire)
# with Go; `make bench` compares with uWSGI's emperor_pg plugin when present.
if [ "${1:-}" = test ] && have pg_lsclusters; then
	pg_lsclusters -h | while read -r version cluster _ status _; do
		if [ "$status" != online ]; then
			echo "setup: starting PostgreSQL $version/$cluster" >&2
			pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
		fi
	done
fi
if [ "${1:-}" = test ] && [ ! -e /usr/lib/uwsgi/plugins/emperor_pg_plugin.so ]; then
	echo "setup: installing uwsgi-plugin-emperor-pg (for the pg:// benchmark)" >&2
	apt_install uwsgi-plugin-emperor-pg || echo "setup: uwsgi-plugin-emperor-pg unavailable; the benchmark skips uWSGI's column" >&2
fi
