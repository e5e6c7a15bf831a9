#!/usr/bin/env bash
# Builds faciofs and runs a demo on defaults: a temporary store holding one
# fake credential, a workspace mounted over a temporary backing directory,
# the agent's view and a permitted consumer's view of the same file, and a
# clean unmount. Nothing outside one temporary directory is touched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/faciofs-demo.XXXXXX")
daemon=""
cleanup() {
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		kill -INT "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	if grep -q " $work/workspace " /proc/mounts 2>/dev/null; then
		"$work/faciofs" unmount --lazy "$work/workspace" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building faciofs"
(cd "$here" && go build -o "$work/faciofs" ./cmd/faciofs)
faciofs="$work/faciofs"

# A demo store with a random master password in a 0600 file. A real setup
# types the password at a hidden prompt instead.
export FACIOFS_STORE="$work/store/store.db"
export FACIOFS_PASSWORD_FILE="$work/master-password"
(umask 077 && head -c 24 /dev/urandom | base64 >"$FACIOFS_PASSWORD_FILE")
"$faciofs" init
printf 'FAKE-demo-key-0001-not-a-real-secret' | "$faciofs" secret set DEMO_API_KEY
"$faciofs" secret list

# The consumer: a copy of cat standing in for an MCP host. The policy
# matches it by executable (device and inode), so the ordinary cat the
# agent runs is not a consumer.
cp "$(command -v cat)" "$work/mcp-host"
cat >"$work/policy.yaml" <<POLICY
version: 1
consumers:
  - name: demo-mcp-host
    match:
      exe: [$work/mcp-host]
    credentials: [DEMO_API_KEY]
    paths: [".env", "**/*.json"]
POLICY

mkdir -p "$work/backing" "$work/workspace"
"$faciofs" mount --policy "$work/policy.yaml" "$work/backing" "$work/workspace" >"$work/mount.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
	grep -q "serving" "$work/mount.log" && break
	kill -0 "$daemon" 2>/dev/null || { cat "$work/mount.log"; exit 1; }
	sleep 0.1
done
cat "$work/mount.log"

echo '== the agent writes workspace/.env with a placeholder'
echo 'DEMO_API_KEY=${credentials.DEMO_API_KEY}' >"$work/workspace/.env"
echo '== the agent (cat) reads:'
cat "$work/workspace/.env"
echo '== the permitted consumer (mcp-host) reads:'
"$work/mcp-host" "$work/workspace/.env"
echo '== the backing directory holds:'
cat "$work/backing/.env"

echo '== unmounting'
kill -INT "$daemon"
wait "$daemon"
daemon=""
echo "done: the mount is gone and $work is removed"
