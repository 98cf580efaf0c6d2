#!/usr/bin/env bash
# sentryd killed with SIGKILL and started again, under traffic: the pinned
# enforcement never stops, the new daemon adopts the pinned state
# (SPEC.md 6.3), checks it against the policy by checksum and applies only
# the difference - and no frame the policy blocks ever passes.
#
#  1. a live-frames flood (tests/tools/flood: BPF_PROG_TEST_RUN with
#     BPF_F_TEST_XDP_LIVE_FRAMES in the client namespace) sends UDP from
#     203.0.113.66 (blocked by every policy here), 198.51.100.10 (blocked
#     only by the policy written while no daemon runs) and 46.172.224.10
#     (always allowed) for the whole test;
#  2. sentryd is killed with SIGKILL, the policy file is replaced (rename),
#     a new sentryd starts and adopts the state, applying the difference;
#  3. countframes on the server sees every frame XDP passed: none from
#     203.0.113.66, frames from 46.172.224.10 throughout, and 198.51.100.10
#     is dropped once the new daemon applied its policy;
#  4. the counter of the rule that stayed counted on across the restart;
#  5. a restart with an unchanged policy writes nothing; a second daemon
#     on a live one's interface is refused;
#  6. state whose link lost its interface (removed and made again) is
#     cleared and the new interface attached.
# Between 2 and 3, still under the flood, a change of generated constants
# replaces the program on the same maps (bpf_link_update): no blocked frame
# passes then either.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build

cd "$SN_REPO"
FLOOD=$SN_BUILD/tests/tools/flood
COUNT=$SN_BUILD/tests/tools/countframes

sn_install_traps
sn_daemon_dirs restart

sn_demo_net_up
sn_serve "$SN_NS_SRV" "$WORK/serve.log" --tcp 80
sn_defer "'$SENTRYCTL' detach --iface srv-a ${ROOTS[*]}"

P=$WORK/policy.sentry
cat >"$P" <<'EOF2'
default allow
block from 203.0.113.66
EOF2

start_sentryd() { # LOGNAME
	if ! sn_sentryd_start "$SN_NS_SRV" "$WORK/$1" --iface srv-a --policy "$P" \
		"${ROOTS[@]}"; then
		fail "sentryd did not come up:"
		sed 's/^/    /' "$WORK/$1"
		return 1
	fi
	SENTRYD_PID=$SN_LAST_PID
	sn_defer "sn_stop $SENTRYD_PID KILL"
}

# sn_sentryd_start waits for "attached to"; an adopting daemon says
# "adopted" instead.
_sn_attached() {
	local n
	n=$(grep -cE 'msg="(attached to |adopted )' "$1" || true)
	((n >= $2))
}

blocked_count() { # the packets of "block from 203.0.113.66"
	sn_rules "$PIN_ROOT" "$STATE_DIR" srv-a >"$WORK/rules"
	local id
	id=$(awk -F'\t' '$4 == "block from 203.0.113.66" { print $1 }' "$WORK/rules")
	sn_counters "$PIN_ROOT" "$STATE_DIR" srv-a | awk -v id="$id" '$1 == id { print $2 }'
}

start_sentryd sentryd1.log || exit 1

# countframes: every frame XDP passes on srv-a
ip netns exec "$SN_NS_SRV" "$COUNT" --iface srv-a --timeout-ms 30000 >"$WORK/count.out" 2>&1 &
COUNT_PID=$!
sn_defer "sn_stop $COUNT_PID KILL"
sn_wait_until 5000 grep -q '^ready$' "$WORK/count.out" || { fail "countframes did not start"; exit 1; }

# 1. the flood, for the whole test
ip netns exec "$SN_NS_CLA" "$FLOOD" --iface cla0 --src 203.0.113.66,198.51.100.10,46.172.224.10 \
	--seconds 8 --repeat 2048 >"$WORK/flood.out" 2>&1 &
FLOOD_PID=$!
sn_defer "sn_stop $FLOOD_PID KILL"
sn_wait_until 5000 grep -q '^started$' "$WORK/flood.out" || { fail "flood did not start: $(cat "$WORK/flood.out")"; exit 1; }
sleep 1
before=$(blocked_count)

# 2. SIGKILL, a new policy while no daemon runs, a new daemon
kill -KILL "$SENTRYD_PID"
sn_stop "$SENTRYD_PID" KILL
if sn_xdp_attached "$SN_NS_SRV" srv-a; then
	pass "enforcement survives SIGKILL"
else
	fail "no XDP program on srv-a after SIGKILL"
fi
sleep 0.5
cat >"$P.new" <<'EOF2'
default allow
block from 198.51.100.10
block from 203.0.113.66
EOF2
mv "$P.new" "$P"
sleep 0.5
t0=$(date +%s%N)
start_sentryd sentryd2.log || { cat "$WORK/sentryd2.log"; exit 1; }
t1=$(date +%s%N)
cat "$WORK/sentryd2.log"
if grep -q 'adopting the pinned state of srv-a' "$WORK/sentryd2.log"; then
	pass "the new daemon adopts the pinned state"
else
	fail "no adoption in the log"
fi
if grep -qE 'adopted srv-a and applied policy=[0-9a-f]{12} \(was [0-9a-f]{12}\): entries=[0-9]+' "$WORK/sentryd2.log"; then
	pass "it applies the difference: $(grep -oE 'entries=[0-9]+' "$WORK/sentryd2.log" | head -n 1)"
else
	fail "no difference applied on adoption"
fi
echo "note: the second daemon started and applied in $(((t1 - t0) / 1000000)) ms"

# 2b. still under the flood: a change of generated constants (the first
#     UDP port rule adds a port table): a new program on the same maps,
#     swapped in with bpf_link_update
cat >"$P.new" <<'EOF2'
default allow
block from 198.51.100.10
block from 203.0.113.66
block to udp port 7
EOF2
mv "$P.new" "$P"
if sn_wait_until 5000 grep -q 'program replaced' "$WORK/sentryd2.log"; then
	pass "new generated constants: the program is replaced under traffic"
else
	fail "no program replacement for new constants:"
	tail -n 5 "$WORK/sentryd2.log"
fi

# 3. what passed, from the flood's start to its end
wait "$FLOOD_PID" || fail "flood failed: $(cat "$WORK/flood.out")"
sleep 0.3
sn_stop "$COUNT_PID" TERM
cat "$WORK/flood.out"
cat "$WORK/count.out"
sent() { awk -v s="$1" '$1 == "src" && $2 == s { print $3 }' "$WORK/flood.out"; }
seen() { awk -v s="$1" '$1 == "src" && $2 == s { n = $3 } END { print n + 0 }' "$WORK/count.out"; }
drops=$(awk '$1 == "drops" { print $2 }' "$WORK/count.out")
if (($(seen 203.0.113.66) == 0)); then
	pass "not one of $(sent 203.0.113.66) frames from the blocked 203.0.113.66 passed"
else
	fail "$(seen 203.0.113.66) frames from the blocked 203.0.113.66 passed"
fi
a_sent=$(sent 46.172.224.10) a_seen=$(seen 46.172.224.10)
if ((a_seen + drops >= a_sent * 9 / 10)); then
	pass "the allowed 46.172.224.10 passed throughout ($a_seen of $a_sent, $drops lost by the socket)"
else
	fail "the allowed 46.172.224.10: only $a_seen of $a_sent passed ($drops lost by the socket)"
fi
if (($(seen 198.51.100.10) > 0)); then
	pass "198.51.100.10 passed before the new policy ($(seen 198.51.100.10))"
else
	fail "198.51.100.10 never passed: the test did not see the old policy"
fi
got=$(sn_flow "$SN_NS_CLA" 198.51.100.10 "$SN_SRV_A4" tcp/80 400)
if [[ $got == dropped ]]; then
	pass "198.51.100.10 dropped under the adopted daemon's policy"
else
	fail "198.51.100.10 $got under the new policy"
fi

# 4. the counter of the rule that stayed
after=$(blocked_count)
b_sent=$(sent 203.0.113.66)
if ((after >= b_sent * 9 / 10 && after > before)); then
	pass "'block from 203.0.113.66' counted on across the restart ($before before, $after of $b_sent sent)"
else
	fail "'block from 203.0.113.66' counter $after (was $before), $b_sent sent"
fi

# 5. an unchanged restart writes nothing; a live daemon is not adopted
sn_stop "$SENTRYD_PID" KILL
start_sentryd sentryd3.log || exit 1
if grep -q 'it enforces policy [0-9a-f]\{12\} already, nothing written' "$WORK/sentryd3.log"; then
	pass "a restart with the same policy writes nothing"
else
	fail "unchanged restart:"
	cat "$WORK/sentryd3.log"
fi
RC=0
timeout 10 nsenter --net="/run/netns/$SN_NS_SRV" "$SENTRYD" --iface srv-a --policy "$P" \
	"${ROOTS[@]}" >"$WORK/dup.log" 2>&1 || RC=$?
if ((RC == 1)) && grep -q 'managed by a running sentryd (pid [0-9]*)' "$WORK/dup.log"; then
	pass "a second daemon on a live one's interface is refused"
else
	fail "second daemon: exit $RC: $(cat "$WORK/dup.log")"
fi
sn_stop "$SENTRYD_PID" TERM

# 6. state whose link lost its interface (it was removed and made again)
#    enforces nothing: removed, and the interface attached anew
ip -n "$SN_NS_SRV" link add st0 type veth peer name st1
ip -n "$SN_NS_SRV" link set st0 up
ip -n "$SN_NS_SRV" link set st1 up
sn_defer "'$SENTRYCTL' detach --iface st0 ${ROOTS[*]}"
if sn_sentryd_start "$SN_NS_SRV" "$WORK/st1.log" --iface st0 --policy "$P" "${ROOTS[@]}"; then
	sn_stop "$SN_LAST_PID" KILL
	ip -n "$SN_NS_SRV" link del st0
	ip -n "$SN_NS_SRV" link add st0 type veth peer name st1
	ip -n "$SN_NS_SRV" link set st0 up
	if sn_sentryd_start "$SN_NS_SRV" "$WORK/st2.log" --iface st0 --policy "$P" "${ROOTS[@]}" &&
		grep -q 'removing stale state' "$WORK/st2.log" && sn_xdp_attached "$SN_NS_SRV" st0; then
		pass "state of a removed interface is cleared and the new one attached"
	else
		fail "stale state:"
		cat "$WORK/st2.log"
	fi
	sn_stop "$SN_LAST_PID" TERM
else
	fail "sentryd on st0 did not start: $(cat "$WORK/st1.log")"
fi

if ((failures)); then
	echo "restart: $failures failures"
	exit 1
fi
echo "restart: all checks passed"
