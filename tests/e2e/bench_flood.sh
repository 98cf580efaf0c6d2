#!/usr/bin/env bash
# bench/flood end to end, in seconds instead of minutes: 47Sentry and no
# filter under a short live-frames flood with the legitimate client beside
# it (`make bench-flood` runs the full comparison; BENCHMARKS.md).
#
#  1. the bench runs to its tables and its targets;
#  2. 47Sentry passes no frame from a blocklisted source, in either flood
#     phase, and passes frames from outside the blocklist and the
#     client's; without a filter, blocklisted sources pass;
#  3. every ring overflow of the paced phase is accounted for (RING
#     OVERFLOWS: its causes add up to its episodes);
#  4. the run leaves no namespace and no pin behind, and the per-CPU page
#     list setting it changes for the run is the machine's again.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"

sn_require_root
sn_require_build
sn_install_traps
sn_bpffs_mounted

BENCH=$SN_BUILD/bench/flood
for b in "$BENCH" "$SN_BUILD/bench/flood-client" "$SN_BUILD/bench/flood_gen.bpf.o" \
	"$SN_BUILD/bench/ringloss.bpf.o"; do
	[[ -e $b ]] || { echo "missing $b: run make" >&2; exit 1; }
done
for t in nft ethtool; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed (make deps)"; exit 77; }
done

PCP_SYSCTL=/proc/sys/vm/percpu_pagelist_high_fraction
pcp_before=$(cat "$PCP_SYSCTL")
WORK=$(mktemp -d)
sn_defer "rm -rf '$WORK'"

# 1. a short run (its own waits are bounded; this one bounds it again)
"$BENCH" --gen-obj "$SN_BUILD/bench/flood_gen.bpf.o" --sentryd "$SENTRYD" \
	--ringloss-obj "$SN_BUILD/bench/ringloss.bpf.o" \
	--probe "$PROBE" --client "$SN_BUILD/bench/flood-client" --work "$WORK" \
	--data "$SN_REPO/../shared/data/country-ip-blocks" --systems sentry,none \
	--seconds 0.5 --warmup 0.2 --stats-seconds 0.3 --pps 200000 --rate 500 \
	--sources 4096 >"$WORK/out" 2>&1 &
BENCH_PID=$!
sn_defer "sn_stop $BENCH_PID KILL"
sn_wait_until 120000 _sn_dead "$BENCH_PID" || fail "bench/flood still running after 120 s"
sn_stop "$BENCH_PID"
cat "$WORK/out"
((SN_STOP_RC == 0)) || fail "bench/flood exited $SN_STOP_RC"
for section in FLOOD LEGITIMATE "CONFUSION MATRIX" "RING OVERFLOWS" TARGETS; do
	grep -q "^$section" "$WORK/out" || fail "no $section table"
done

# 2. the confusion matrix: "system|phase|class|sent|dropped|passed"
awk '
	/^CONFUSION MATRIX/ { on = 1; getline; next }
	/^RING OVERFLOWS|^TARGETS/ { on = 0 }
	on && NF {
		s = substr($0, 1, 26); p = substr($0, 28, 9); c = substr($0, 38, 36)
		gsub(/^ +| +$/, "", s); gsub(/^ +| +$/, "", p); gsub(/^ +| +$/, "", c)
		if (s != "") sys = s
		if (p != "") ph = p
		if (c ~ /^of the flood/) next
		print sys "|" ph "|" c "|" $(NF - 3) "|" $(NF - 2) "|" $(NF - 1)
	}' "$WORK/out" >"$WORK/matrix"
cat "$WORK/matrix"
row() { # SYSTEM PHASE CLASS -> "sent dropped passed"
	awk -F'|' -v s="$1" -v p="$2" -v c="$3" \
		'$1 == s && $2 == p && $3 == c { print $4, $5, $6 }' "$WORK/matrix"
}
for ph in max "200k pps"; do
	for class in "attack, in blocklist: country list" "attack, in blocklist: attack ranges"; do
		read -r sent _ passed <<<"$(row "47Sentry XDP native" "$ph" "$class")" || true
		[[ -n ${sent:-} ]] || { fail "no row for 47Sentry, $ph, $class"; continue; }
		((sent > 0)) || fail "47Sentry, $ph: no frame sent from $class"
		((passed == 0)) || fail "47Sentry, $ph: $passed frames from $class passed"
	done
done
read -r sent _ passed <<<"$(row "47Sentry XDP native" "200k pps" "spoofed, outside blocklist")" || true
((${passed:-0} > 0)) || fail "47Sentry passed no frame from outside the blocklist"
read -r sent _ passed <<<"$(row "47Sentry XDP native" "none" "legitimate client")" || true
((${passed:-0} > 0)) || fail "the client's packets did not pass 47Sentry"
read -r sent _ passed <<<"$(row "no filter" "200k pps" "attack, in blocklist: country list")" || true
((${passed:-0} > 0)) || fail "without a filter, no blocklisted frame passed"

# 3. ring overflows: overload + host steal + page drain + neither = episodes
awk '/^RING OVERFLOWS/ { on = 1; getline; getline; next } on && !NF { on = 0 }
	on { print $(NF - 10), $(NF - 7), $(NF - 6), $(NF - 5), $(NF - 4) }' "$WORK/out" >"$WORK/rl"
[[ -s $WORK/rl ]] || fail "RING OVERFLOWS has no rows"
while read -r ep ov st dr ne; do
	((ov + st + dr + ne == ep)) || fail "ring overflows: $ov + $st + $dr + $ne != $ep episodes"
done <"$WORK/rl"
grep -q "^per-CPU page list of CPU1: 256 pages" "$WORK/out" || fail "the page list was not sized"

# 4. nothing left behind (the names carry the bench's pid in hex)
id=$(printf '%x' "$BENCH_PID")
if ip netns list | grep -q -- "-$id\b"; then
	fail "namespaces left: $(ip netns list | grep -- "-$id\b" | tr '\n' ' ')"
fi
[[ ! -e /sys/fs/bpf/47sentry-benchflood-$id ]] || fail "pins left under /sys/fs/bpf/47sentry-benchflood-$id"
[[ $(cat "$PCP_SYSCTL") == "$pcp_before" ]] ||
	fail "vm.percpu_pagelist_high_fraction is $(cat "$PCP_SYSCTL"), was $pcp_before"

((failures == 0)) || exit 1
echo "bench_flood: ok"
