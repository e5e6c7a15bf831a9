#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a duration each.
#   scripts/fuzz.sh [DURATION]     DURATION as go test -fuzztime takes it (default 60s)
# CI runs it for 5s a target, and replays the committed seed corpora in
# plain `go test`; run it for minutes for a real pass. New crashers land in the package's testdata/fuzz/, where
# plain `go test` replays them: commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
dur="${1:-60s}"
failed=()
# "path/to/pkg/file_test.go:LINE:func FuzzName(" -> "./path/to/pkg FuzzName"
targets=$(grep -rn '^func Fuzz' --include='*_test.go' . |
	sed -E 's|^\./(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*|./\1 \2|' | sort -u)
if [ -z "$targets" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
while read -r pkg name; do
	echo "== $name in $pkg for $dur"
	if ! go test -run XXX -fuzz "^${name}\$" -fuzztime "$dur" "$pkg"; then
		failed+=("$pkg $name")
	fi
done <<<"$targets"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all fuzz targets passed ($dur each)"
