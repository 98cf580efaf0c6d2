#!/usr/bin/env bash
# sentryd's failure paths leave nothing behind:
#
#  - bad usage exits 2;
#  - an invalid policy exits 1 with located diagnostics (sentry-compile's
#    format) and attaches and pins nothing;
#  - an unknown interface exits 1 and touches no other interface;
#  - a failure half-way (the second interface, lo, has no native XDP) rolls
#    back the first: no XDP program, pins or saved image remain;
#  - an interface that a running daemon manages is refused (its lock), and
#    the running daemon is untouched (a dead daemon's state is adopted:
#    tests/e2e/restart.sh);
#  - under `ip netns exec` (private mount namespace, where pins would not
#    outlive the daemon) it refuses instead of enforcing until it exits;
#  - SIGTERM exits 0 and keeps enforcement; --detach-on-exit removes it.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build

cd "$SN_REPO"
POLICY=policies/demo.sentry
NS=sn-err-$SN_ID

sn_install_traps
sn_daemon_dirs err

# run_sentryd ARGS...: sentryd in NS (foreground); sets RC, output in
# $WORK/out.  Bounded: a sentryd that unexpectedly starts is stopped.
run_sentryd() {
	RC=0
	timeout -s TERM 10 nsenter --net="/run/netns/$NS" "$SENTRYD" "$@" \
		>"$WORK/out" 2>&1 || RC=$?
}

# nothing_left IF...: no XDP program on the interfaces, no pins, no state.
nothing_left() {
	local ifc
	for ifc in "$@"; do
		if sn_xdp_attached "$NS" "$ifc"; then fail "$WHAT: XDP program left on $ifc"; fi
		if [[ -e $PIN_ROOT/$ifc ]]; then fail "$WHAT: pins left for $ifc"; fi
		if [[ -e $STATE_DIR/$ifc ]]; then fail "$WHAT: saved image left for $ifc"; fi
	done
}

expect_rc() { # WANT
	if ((RC == $1)); then
		pass "$WHAT: exit $RC"
	else
		fail "$WHAT: exit $RC, expected $1; output:"
		sed 's/^/    /' "$WORK/out"
	fi
}

expect_out() { # EXTENDED-REGEX
	if grep -Eq -- "$1" "$WORK/out"; then
		pass "$WHAT: says /$1/"
	else
		fail "$WHAT: output lacks /$1/:"
		sed 's/^/    /' "$WORK/out"
	fi
}

sn_netns "$NS"
sn_veth "$NS" e0 "$NS" e0peer
sn_veth "$NS" e1 "$NS" e1peer

# ---- usage -------------------------------------------------------------------
WHAT="no arguments"
run_sentryd
expect_rc 2
WHAT="--policy missing"
run_sentryd --iface e0
expect_rc 2
WHAT="--iface missing"
run_sentryd --policy "$POLICY"
expect_rc 2
WHAT="bad --xdp-mode"
run_sentryd --iface e0 --policy "$POLICY" --xdp-mode turbo
expect_rc 2
WHAT="unknown option"
run_sentryd --iface e0 --policy "$POLICY" --frobnicate
expect_rc 2
WHAT="same --iface twice"
run_sentryd --iface e0 --iface e0 --policy "$POLICY"
expect_rc 2
WHAT="--help"
run_sentryd --help
expect_rc 0
nothing_left e0

# ---- invalid policy ------------------------------------------------------------
cat >"$WORK/bad.sentry" <<'EOF'
allow from 192.0.2.0/24
block from 10.0.0.1/8
EOF
WHAT="invalid policy"
run_sentryd --iface e0 --iface e1 --policy "$WORK/bad.sentry" "${ROOTS[@]}"
expect_rc 1
expect_out "bad\.sentry:2:[0-9]+: error\[E[0-9]+\]"
expect_out "^ +2 \| block from 10\.0\.0\.1/8"
expect_out 'nothing attached'
nothing_left e0 e1

WHAT="unreadable policy"
run_sentryd --iface e0 --policy "$WORK/missing.sentry" "${ROOTS[@]}"
expect_rc 1
expect_out 'cannot read policy'
nothing_left e0

# ---- unknown interface -----------------------------------------------------------
WHAT="unknown interface"
run_sentryd --iface e0 --iface nosuch0 --policy "$POLICY" "${ROOTS[@]}"
expect_rc 1
expect_out 'no interface nosuch0'
nothing_left e0

# ---- ip netns exec: a private mount namespace ----------------------------------
# `ip netns exec` remounts /sys, so /sys/fs/bpf is empty in there; a bpffs
# mounted inside would die with the command, pinned link and all.
WHAT="sentryd under ip netns exec"
RC=0
timeout -s TERM 10 ip netns exec "$NS" "$SENTRYD" --iface e0 --policy "$POLICY" \
	"${ROOTS[@]}" >"$WORK/out" 2>&1 || RC=$?
expect_rc 1
expect_out 'private mount namespace'
nothing_left e0

# ---- failure half-way: rollback ------------------------------------------------
# lo has no native XDP (no driver hook), so e0 attaches and lo fails.
WHAT="native XDP on lo (rollback)"
run_sentryd --iface e0 --iface lo --xdp-mode native --policy "$POLICY" "${ROOTS[@]}"
expect_rc 1
expect_out 'rolled back'
nothing_left e0 lo

# ---- existing state ----------------------------------------------------------------
WHAT="first daemon"
if sn_sentryd_start "$NS" "$WORK/d1.log" --iface e0 --policy "$POLICY" "${ROOTS[@]}"; then
	pass "$WHAT attached to e0"
else
	fail "$WHAT did not attach:"
	sed 's/^/    /' "$WORK/d1.log"
fi
D1=$SN_LAST_PID
sn_defer "sn_stop $D1 KILL"
sn_defer "'$SENTRYCTL' detach --iface e0 ${ROOTS[*]}"

WHAT="second daemon on e0"
run_sentryd --iface e1 --iface e0 --policy "$POLICY" "${ROOTS[@]}"
expect_rc 1
expect_out 'interface e0 is managed by a running sentryd \(pid [0-9]+\); stop it first'
nothing_left e1 # refused before touching e1
if sn_alive "$D1" && sn_xdp_attached "$NS" e0 && [[ -e $PIN_ROOT/e0/link ]]; then
	pass "first daemon and its enforcement untouched"
else
	fail "first daemon or its enforcement disturbed by the refused one"
fi

# ---- SIGTERM keeps enforcement --------------------------------------------------
WHAT="SIGTERM"
sn_stop "$D1" TERM
RC=$SN_STOP_RC
cp "$WORK/d1.log" "$WORK/out"
expect_rc 0
expect_out 'enforcement on e0 stays pinned'
if sn_xdp_attached "$NS" e0 && [[ -e $PIN_ROOT/e0/link ]]; then
	pass "enforcement stays after a clean exit"
else
	fail "enforcement gone after SIGTERM without --detach-on-exit"
fi
if "$SENTRYCTL" detach --iface e0 "${ROOTS[@]}" >"$WORK/out" 2>&1; then
	pass "detach after the daemon exited"
else
	fail "detach failed: $(cat "$WORK/out")"
fi
WHAT="after detach"
nothing_left e0

# ---- --detach-on-exit -------------------------------------------------------------
WHAT="--detach-on-exit"
if sn_sentryd_start "$NS" "$WORK/d2.log" --iface e0 --iface e1 --detach-on-exit \
	--policy "$POLICY" "${ROOTS[@]}"; then
	D2=$SN_LAST_PID
	sn_defer "sn_stop $D2 KILL"
	sn_stop "$D2" INT
	RC=$SN_STOP_RC
	cp "$WORK/d2.log" "$WORK/out"
	expect_rc 0
	expect_out 'detached from e1'
	nothing_left e0 e1
else
	fail "$WHAT: sentryd did not attach:"
	sed 's/^/    /' "$WORK/d2.log"
fi

if ((failures)); then
	echo "sentryd_errors: $failures failures"
	exit 1
fi
echo "sentryd_errors: all checks passed"
