#!/usr/bin/env bash
# Run each fuzz target for a bounded time on a corpus seeded from the repo:
# tests/fuzz/seeds, every golden test policy, the shipped policies, and the
# regression inputs.  Usage: run.sh BUILD_DIR SECONDS TARGET...
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$1 seconds=$2
shift 2
mkdir -p "$build/artifacts"
for t in "$@"; do
	corpus=$build/corpus-$t
	mkdir -p "$corpus"
	cp -n tests/fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
	if [[ $t == policy ]]; then
		find tests/golden policies -name '*.sentry' -exec cp -n {} "$corpus"/ \; 2>/dev/null || true
	fi
	cp -n tests/fuzz/regressions/"$t"-* "$corpus"/ 2>/dev/null || true
	echo "== fuzz_$t for ${seconds}s ($(ls "$corpus" | wc -l) inputs in corpus)"
	# -rss_limit_mb bounds memory per input; -timeout flags hangs (>10 s).
	"$build/fuzz_$t" "$corpus" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$t-" 2>&1 | tail -n 25
done
