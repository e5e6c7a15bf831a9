#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a duration each.
#   scripts/fuzz.sh [DURATION]     DURATION as go test -fuzztime takes it (default 60s)
# CI runs it for 5s a target, and replays the committed seed corpora in
# plain `go test`; run it for minutes for a real pass. New crashers land in the package's testdata/fuzz/, where
# plain `go test` replays them: commit them with the fix.
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" at
# the moment a duration -fuzztime runs out (golang/go#75804, fixed in Go 1.27):
# a shutdown race, not a finding. A real finding always writes a failing input
# under testdata/fuzz/NAME/ and says so; a run that failed with only that line,
# wrote nothing, and whose corpus then replays clean is reported as the race
# and not counted as a failure. Anything else that fails still fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
dur="${1:-60s}"
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# "path/to/pkg/file_test.go:LINE:func FuzzName(" -> "./path/to/pkg FuzzName"
targets=$(grep -rn '^func Fuzz' --include='*_test.go' . |
	sed -E 's|^\./(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*|./\1 \2|' | sort -u)
if [ -z "$targets" ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi

# corpus_files PKG NAME: the failing inputs the package holds for NAME, one a line.
corpus_files() {
	find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort || true
}

# shutdown_race LOG BEFORE AFTER: the failure is the coordinator race and nothing else.
shutdown_race() {
	grep -q 'context deadline exceeded' "$1" &&
		! grep -Eq 'Failing input written|panic:|^\s+[a-z_]+_test\.go:[0-9]+:' "$1" &&
		[ "$2" = "$3" ]
}

while read -r pkg name; do
	echo "== $name in $pkg for $dur"
	before=$(corpus_files "$pkg" "$name")
	if go test -run XXX -fuzz "^${name}\$" -fuzztime "$dur" "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
		continue
	fi
	after=$(corpus_files "$pkg" "$name")
	if shutdown_race "$log" "$before" "$after" && go test -count=1 -run "^${name}\$" "$pkg"; then
		echo "== $name: fuzztime shutdown race (golang/go#75804), no failing input, corpus replays clean"
		continue
	fi
	failed+=("$pkg $name")
done <<<"$targets"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all fuzz targets passed ($dur each)"
