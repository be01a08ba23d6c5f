#!/bin/sh
# Multi-tenant Emperor demo: two tenants (uids 2001 and 2002, no passwd
# entry needed), each vassal isolated in namespaces, capabilities and a
# cgroup; a root-owned config is refused. Needs root. Run from anywhere:
#
#	sudo examples/tyrant/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (tyrant mode changes users)" >&2; exit 1; }
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

work=$(mktemp -d /tmp/emperor-tyrant-XXXXXX)
chmod 755 "$work"
emperor_pid=
cleanup() {
	[ -n "$emperor_pid" ] && kill "$emperor_pid" 2>/dev/null && wait "$emperor_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/bin" "$work/vassals"
(cd "$repo" && CGO_ENABLED=0 "$GO" build -o "$work/bin/emperor" ./cmd/emperor &&
	CGO_ENABLED=0 "$GO" build -o "$work/bin/vassal" ./cmd/vassal &&
	CGO_ENABLED=0 "$GO" build -o "$work/bin/hello" ./examples/apps/hello)
cp "$here/emperor.ini" "$work/"

tenant() { # name uid port memory
	sed -e "s/@NAME@/$1/; s/@PORT@/$3/; s/@MEMORY@/$4/" "$here/tenant.ini.in" >"$work/vassals/$1.ini"
	chown "$2:$2" "$work/vassals/$1.ini"
}
tenant alice 2001 9201 1G
tenant bob 2002 9202 64M
sed -e "s/@NAME@/root/; s/@PORT@/9203/; s/@MEMORY@/64M/" "$here/tenant.ini.in" >"$work/vassals/rooted.ini"

"$work/bin/emperor" --ini "$work/emperor.ini" >"$work/hooks.out" 2>"$work/emperor.log" &
emperor_pid=$!

# Wait (up to 15 s) until both tenants answer.
i=0
until curl -fsS http://127.0.0.1:9201/ >/dev/null 2>&1 && curl -fsS http://127.0.0.1:9202/ >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 150 ] || { echo "tenants did not come up; emperor log:" >&2; cat "$work/emperor.log" >&2; exit 1; }
	sleep 0.1
done

# limit CONTROLLER V1FILE V2FILE: a vassal's limit, from the v1 hierarchy
# of the controller where there is one, else from cgroup v2.
limit() {
	v1=$(awk -F: -v c="$1" '$2 == c { print $3 }' "/proc/$pid/cgroup")
	if [ -n "$v1" ] && [ -f "/sys/fs/cgroup/$1$v1/$2" ]; then
		cat "/sys/fs/cgroup/$1$v1/$2"
	else
		cat "/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")/$3"
	fi
}

for t in alice bob; do
	port=$([ $t = alice ] && echo 9201 || echo 9202)
	pid=$(pgrep -f "vassal --ini $t.ini" | head -n 1)
	field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
	echo "$t: $(curl -fsS http://127.0.0.1:$port/)"
	echo "  hostname $(nsenter -t "$pid" -u hostname), sees $(nsenter -t "$pid" -m -p ls /proc | grep -c '^[0-9]') processes"
	echo "  uid $(field Uid) gid $(field Gid), pid $(awk '$1 == "NSpid:" { print $3 }' "/proc/$pid/status") in its namespace"
	echo "  CapEff $(field CapEff)  CapBnd $(field CapBnd)"
	echo "  memory limit $(($(limit memory memory.limit_in_bytes memory.max) / 1048576)) MiB, pids.max $(limit pids pids.max pids.max)"
done
echo "rooted.ini: $(grep -o 'refusing to run as uid 0 gid 0 (root)' "$work/emperor.log" | head -n 1)"
echo "stopping: the Emperor ends every vassal and removes its cgroup"
echo "hooks:"
sed "s|$work/||" "$work/hooks.out" | sort
