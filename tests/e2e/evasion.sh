#!/usr/bin/env bash
# Evasion suite over real veth links: every case of
# tests/kernel/evasion_cases.h (the frames tests/kernel/test_evasion runs
# through BPF_PROG_TEST_RUN) is written as a raw Ethernet frame from a
# client namespace (tests/tools/sendframe, AF_PACKET) into a server
# namespace where sentryd enforces the cases' policy - once on a link in
# native XDP mode and once on a link in generic mode.  For every frame:
#
#  1. exactly one per-rule counter moves, by one packet: the case's rule
#     (read with sentryctl status);
#  2. it arrives past XDP on the server (a packet socket there,
#     tests/tools/recvframe, sees the frames XDP passed, by the tag
#     sendframe writes into the source MAC) exactly when the case says
#     PASS.
#
# The links carry nothing else: no addresses, IPv6 off, so no ARP, ND or
# MLD moves a counter.  Frames shorter than an Ethernet header (packet
# class 1) cannot be sent and are not tried.  Every wait is bounded;
# namespaces, pins and state are removed on every exit path.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build
SENDFRAME=$SN_BUILD/tests/tools/sendframe
RECVFRAME=$SN_BUILD/tests/tools/recvframe
for b in "$SENDFRAME" "$RECVFRAME"; do
	[[ -x $b ]] || { echo "missing $b: run make" >&2; exit 1; }
done

cd "$SN_REPO"
NS_SRV=sn-evs-$SN_ID
NS_CLI=sn-evc-$SN_ID
MODES=(native generic)
WAIT_MS=2000 # for one frame to be counted

sn_install_traps
sn_daemon_dirs ev

# ---- the network: cli-MODE (client ns) <-> srv-MODE (server ns) --------------
for ns in "$NS_SRV" "$NS_CLI"; do
	sn_netns "$ns"
	# Before the links exist, so they never send ND/MLD.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1
done
declare -A SRV_MAC
for m in "${MODES[@]}"; do
	sn_veth "$NS_CLI" "cli-$m" "$NS_SRV" "srv-$m"
	SRV_MAC[$m]=$(sn_mac "$NS_SRV" "srv-$m")
done

"$SENDFRAME" --policy >"$WORK/evasion.sentry"
"$SENDFRAME" --list >"$WORK/cases"

for m in "${MODES[@]}"; do
	sn_defer "'$SENTRYCTL' detach --iface srv-$m --pin-root '$PIN_ROOT' --state-dir '$STATE_DIR'"
	if ! sn_sentryd_start "$NS_SRV" "$WORK/sentryd.$m.log" --iface "srv-$m" \
		--xdp-mode "$m" --policy "$WORK/evasion.sentry" \
		--pin-root "$PIN_ROOT" --state-dir "$STATE_DIR"; then
		echo "FAIL: sentryd ($m) did not attach:"
		cat "$WORK/sentryd.$m.log"
		exit 1
	fi
	sn_defer "sn_stop $SN_LAST_PID KILL"
	got=$("$SENTRYCTL" status --iface "srv-$m" --pin-root "$PIN_ROOT" \
		--state-dir "$STATE_DIR" | awk '/^xdp mode/ { print $3 }')
	[[ $got == "$m" ]] || fail "srv-$m: XDP mode is '$got', asked for $m"

	ip netns exec "$NS_SRV" "$RECVFRAME" --iface "srv-$m" --timeout-ms 300000 \
		>"$WORK/recv.$m" 2>&1 &
	sn_defer "sn_stop $! KILL"
	sn_wait_until 5000 grep -q '^ready$' "$WORK/recv.$m" ||
		{ echo "FAIL: recvframe on srv-$m did not start:"; cat "$WORK/recv.$m"; exit 1; }
done

# ---- send every case on every link ------------------------------------------
counters() { # MODE FILE
	sn_counters "$PIN_ROOT" "$STATE_DIR" "srv-$1" >"$2"
}
total() { awk '{ s += $2 } END { print s + 0 }' "$1"; }
counted_more() { # MODE BEFORE_TOTAL
	counters "$1" "$WORK/after"
	(($(total "$WORK/after") > $2))
}

n_cases=0
for mi in "${!MODES[@]}"; do
	m=${MODES[mi]}
	k=0
	while IFS=$'\t' read -r name action rule what; do
		tag=$((mi * 10000 + k))
		k=$((k + 1))
		n_cases=$((n_cases + 1))
		counters "$m" "$WORK/before"
		t0=$(total "$WORK/before")
		if ! ip netns exec "$NS_CLI" "$SENDFRAME" --iface "cli-$m" --case "$name" \
			--tag "$tag" --dst-mac "${SRV_MAC[$m]}" 2>"$WORK/send.err"; then
			fail "$m $name: sendframe: $(cat "$WORK/send.err")"
			continue
		fi
		sn_wait_until "$WAIT_MS" counted_more "$m" "$t0" || true
		counters "$m" "$WORK/after"
		# Every counter that moved, as "id+delta".
		moved=$(awk 'NR == FNR { b[$1] = $2; next }
			$2 != b[$1] { printf "%s%s+%d", sep, $1, $2 - b[$1]; sep = " " }' \
			"$WORK/before" "$WORK/after")
		if [[ $moved != "$rule+1" ]]; then
			fail "$m $name ($what): counters moved: '${moved:-none}', want '$rule+1'"
		fi
		echo "$tag $m $name $action $rule" >>"$WORK/sent"
	done <"$WORK/cases"
done

# ---- which frames arrived past XDP -------------------------------------------
want_pass=$(awk '$4 == "PASS"' "$WORK/sent" | wc -l)
all_passed_seen() {
	local n=0 m
	for m in "${MODES[@]}"; do
		n=$((n + $(grep -c '^tag ' "$WORK/recv.$m" || true)))
	done
	((n >= want_pass))
}
sn_wait_until 3000 all_passed_seen || true
sleep 0.3 # a dropped frame that did arrive would show up by now
while read -r tag m name action rule; do
	if grep -q "^tag $tag " "$WORK/recv.$m"; then seen=PASS; else seen=DROP; fi
	if [[ $seen != "$action" ]]; then
		fail "$m $name: on the server the frame was $([[ $seen == PASS ]] && echo seen || echo not seen), want $action"
	else
		echo "ok: $m $name: $action at rule $rule"
	fi
done <"$WORK/sent"
# Nothing but our frames: no tag twice, none we did not send.
dups=$(cat "$WORK"/recv.* | awk '/^tag / { if (seen[$2]++) print $2 }')
[[ -z $dups ]] || fail "frames seen more than once: $dups"

# ---- nothing left --------------------------------------------------------------
namespaces=("$NS_SRV" "$NS_CLI")
sn_cleanup || true
sn_install_traps
for ns in "${namespaces[@]}"; do
	if [[ -e /run/netns/$ns ]]; then fail "namespace $ns left behind"; fi
done
if [[ -e $PIN_ROOT ]]; then fail "pin root $PIN_ROOT left behind"; fi
if [[ -e $STATE_DIR ]]; then fail "state dir $STATE_DIR left behind"; fi

if ((failures)); then
	echo "evasion: $failures failures in $n_cases frames"
	exit 1
fi
echo "evasion: $n_cases frames over veth (${MODES[*]} XDP), $want_pass passed, all as expected"
