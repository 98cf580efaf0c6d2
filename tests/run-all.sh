#!/usr/bin/env bash
# Run every test suite (or the ones named: unit golden deploy kernel e2e) and end
# with one "N passed, N failed, N skipped" line.
#
# Kernel and end-to-end tests need root and a BPF-capable kernel.  Without
# them they skip with the reason, unless SENTRY_REQUIRE_KERNEL=1 or CI=true:
# then a skip is a failure, so CI can never pass without running them.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
suites=("$@")
((${#suites[@]})) || suites=(unit golden deploy kernel e2e)
require_kernel=0
[[ ${SENTRY_REQUIRE_KERNEL:-0} == 1 || ${CI:-} == true ]] && require_kernel=1

passed=0 failed=0 skipped=0
failures=()

# run NAME CMD...: exit 0 pass, 77 skip, anything else fail.
run() {
	local name=$1
	shift
	local log
	log=$(mktemp)
	local t0=$SECONDS
	"$@" >"$log" 2>&1
	local rc=$?
	local dt=$((SECONDS - t0))
	if ((rc == 0)); then
		passed=$((passed + 1))
		printf 'PASS  %-44s %3ss\n' "$name" "$dt"
	elif ((rc == 77)) && ((require_kernel == 0)); then
		skipped=$((skipped + 1))
		printf 'SKIP  %-44s %s\n' "$name" "$(tail -n 1 "$log")"
	else
		failed=$((failed + 1))
		failures+=("$name")
		((rc == 77)) && echo "      (skipped, but CI/SENTRY_REQUIRE_KERNEL requires it to run)"
		printf 'FAIL  %-44s (exit %d)\n' "$name" "$rc"
		sed 's/^/      | /' "$log" | tail -n 60
	fi
	rm -f "$log"
}

# Can this process load BPF programs and make namespaces?
kernel_ready() {
	[[ $EUID -eq 0 ]] || { echo "needs root (BPF, netns)"; return 1; }
	[[ -e /sys/kernel/btf/vmlinux ]] || { echo "kernel without BTF"; return 1; }
	if ! mountpoint -q /sys/fs/bpf; then
		mount -t bpf bpf /sys/fs/bpf 2>/dev/null || { echo "bpffs not mountable"; return 1; }
	fi
	return 0
}

skip_all() { # suite reason
	echo "$2"
	exit 77
}

for suite in "${suites[@]}"; do
	echo "== $suite"
	case $suite in
	unit)
		for t in "$BUILD"/tests/unit/*; do
			[[ -x $t && ! -d $t && $t != *.o && $t != *.d ]] || continue
			run "unit/$(basename "$t")" "$t"
		done
		;;
	golden)
		run golden tests/golden/run.sh
		;;
	deploy)
		run deploy tests/deploy/check.sh
		;;
	kernel | e2e)
		if reason=$(kernel_ready); then
			if [[ $suite == kernel ]]; then
				for t in "$BUILD"/tests/kernel/*; do
					[[ -x $t && ! -d $t && $t != *.o && $t != *.d ]] || continue
					run "kernel/$(basename "$t")" "$t"
				done
			else
				for t in tests/e2e/*.sh; do
					[[ -e $t ]] || continue
					run "e2e/$(basename "$t" .sh)" "$t"
				done
			fi
		else
			run "$suite" skip_all "$suite" "SKIP: $reason"
		fi
		;;
	*)
		echo "unknown suite: $suite" >&2
		exit 2
		;;
	esac
done

echo
((failed)) && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
