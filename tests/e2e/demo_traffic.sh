#!/usr/bin/env bash
# End to end, with real sockets in network namespaces: sentryd enforces
# policies/demo.sentry on both links of a server namespace.
#
#  1. every flow of the demo matrix passes or drops as the policy says, and
#     the per-rule counter of the rule that should decide it is the one
#     that moves;
#  2. enforcement survives `kill -9` of sentryd (a blocked flow is still
#     dropped with the daemon dead) and `sentryctl detach` removes it
#     without the daemon (the same flow then passes);
#  3. nothing is left: no XDP program on either link, no pins, no saved
#     images, no namespaces.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build

cd "$SN_REPO"
POLICY=policies/demo.sentry
TIMEOUT_MS=800

sn_install_traps
sn_daemon_dirs e2e

sn_demo_net_up
sn_serve "$SN_NS_SRV" "$WORK/serve.log" --tcp 22,80 --udp 53
for ifc in srv-a srv-b; do
	sn_defer "'$SENTRYCTL' detach --iface $ifc --pin-root '$PIN_ROOT' --state-dir '$STATE_DIR'"
done
if ! sn_sentryd_start "$SN_NS_SRV" "$WORK/sentryd.log" --iface srv-a --iface srv-b \
	--policy "$POLICY" --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR"; then
	echo "FAIL: sentryd did not attach:"
	cat "$WORK/sentryd.log"
	exit 1
fi
SENTRYD_PID=$SN_LAST_PID
sn_defer "sn_stop $SENTRYD_PID KILL"
cat "$WORK/sentryd.log"

# ---- 1. the matrix -------------------------------------------------------------
sn_demo_rules_snapshot "$PIN_ROOT" "$STATE_DIR" "$WORK"
for ifc in srv-a srv-b; do
	[[ -s $WORK/rules.$ifc ]] || fail "sentryctl status shows no rules for $ifc"
	sn_xdp_attached "$SN_NS_SRV" "$ifc" || fail "no XDP program on $ifc"
done
for f in "${SN_DEMO_FLOWS[@]}"; do
	sn_demo_flow "$f" "$POLICY" "$PIN_ROOT" "$STATE_DIR" "$WORK" "$TIMEOUT_MS"
	what="$FLOW_SRC -> $FLOW_DST $FLOW_SVC"
	if [[ $FLOW_OBSERVED != "$FLOW_EXPECTED" ]]; then
		fail "$what: expected $FLOW_EXPECTED, observed $FLOW_OBSERVED"
	elif [[ $FLOW_DECIDER != "$FLOW_WANT" ]]; then
		fail "$what: $FLOW_OBSERVED as expected, but counters moved on rule" \
			"$FLOW_DECIDER ($FLOW_DECIDED), expected rule $FLOW_WANT (${f#*|})"
	else
		pass "$what: $FLOW_OBSERVED by $FLOW_DECIDED"
	fi
done

# Every flow's verdict is in the counters: policy rules that decided some
# flow show packets on the link they were sent to.
sn_counters "$PIN_ROOT" "$STATE_DIR" srv-a >"$WORK/final.a"
awk '$1 == 4 && $2 >= 3 { ok = 1 } END { exit !ok }' "$WORK/final.a" ||
	fail "rule 4 (block 203.0.113.0/24) should count >= 3 packets on srv-a"

# status without --iface lists both links and exits 0.
if out=$("$SENTRYCTL" status --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR"); then
	for ifc in srv-a srv-b; do
		grep -q "^interface  $ifc\$" <<<"$out" || fail "status does not list $ifc"
	done
	grep -q "policies/demo.sentry:[0-9]*:[0-9]*  block from 203.0.113.0/24" <<<"$out" ||
		fail "status does not show rule locations and texts"
else
	fail "sentryctl status exited non-zero"
fi

# ---- 2. kill -9, then detach without the daemon ---------------------------
blocked=(A 203.0.113.66 tcp/80)
probe_blocked() {
	sn_flow "$SN_NS_CLA" "${blocked[1]}" "$SN_SRV_A4" "${blocked[2]}" "$TIMEOUT_MS"
}

sn_stop "$SENTRYD_PID" KILL 2>/dev/null
((SN_STOP_RC == 137)) || fail "sentryd after SIGKILL: exit $SN_STOP_RC, expected 137"
for ifc in srv-a srv-b; do
	sn_xdp_attached "$SN_NS_SRV" "$ifc" || fail "XDP left $ifc when sentryd was killed"
	[[ -e $PIN_ROOT/$ifc/link ]] || fail "pinned link of $ifc gone after kill -9"
done
r=$(probe_blocked)
if [[ $r == dropped ]]; then
	pass "blocked flow still dropped with sentryd dead"
else
	fail "with sentryd dead, 203.0.113.66 -> tcp/80 was $r, expected dropped"
fi

for ifc in srv-a srv-b; do
	if out=$("$SENTRYCTL" detach --iface "$ifc" --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" 2>&1); then
		pass "detach $ifc: $out"
	else
		fail "sentryctl detach --iface $ifc failed: $out"
	fi
done
r=$(probe_blocked)
if [[ $r == passed ]]; then
	pass "after detach the flow passes"
else
	fail "after detach, 203.0.113.66 -> tcp/80 was $r, expected passed"
fi

rc=0
"$SENTRYCTL" detach --iface srv-a --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" \
	>"$WORK/detach2" 2>&1 || rc=$?
if ((rc == 1)) && grep -q 'nothing to detach' "$WORK/detach2"; then
	pass "second detach exits 1: $(cat "$WORK/detach2")"
else
	fail "second detach: exit $rc, $(cat "$WORK/detach2")"
fi
rc=0
"$SENTRYCTL" status --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" >/dev/null 2>&1 || rc=$?
((rc == 1)) || fail "status with nothing attached: exit $rc, expected 1"

# ---- 3. nothing left -----------------------------------------------------------
for ifc in srv-a srv-b; do
	if sn_xdp_attached "$SN_NS_SRV" "$ifc"; then fail "XDP program still on $ifc after detach"; fi
	if [[ -e $PIN_ROOT/$ifc ]]; then fail "pins of $ifc left in $PIN_ROOT"; fi
	if [[ -e $STATE_DIR/$ifc ]]; then fail "state of $ifc left in $STATE_DIR"; fi
done

# Run the cleanup now (the trap would do it at exit) and check its work.
namespaces=("$SN_NS_SRV" "$SN_NS_CLA" "$SN_NS_CLB")
sn_cleanup || true
sn_install_traps
for ns in "${namespaces[@]}"; do
	if [[ -e /run/netns/$ns ]]; then fail "namespace $ns left behind"; fi
done
if [[ -e $PIN_ROOT ]]; then fail "pin root $PIN_ROOT left behind"; fi
if [[ -e $STATE_DIR ]]; then fail "state dir $STATE_DIR left behind"; fi

if ((failures)); then
	echo "demo_traffic: $failures failures"
	exit 1
fi
echo "demo_traffic: all checks passed"
