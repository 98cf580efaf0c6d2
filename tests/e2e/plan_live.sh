#!/usr/bin/env bash
# `sentry-compile --plan --live IFACE` against a policy sentryd really
# enforces: it reads the image sentryd saved, checks it against the pinned
# sn_meta checksum, and reports
#   - no change (exit 0) for the running policy,
#   - changes (exit 2) with rule and address-space lines for an edited one,
#   - an error (exit 1) when the saved image no longer matches the pins.
#
# Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build

cd "$SN_REPO"
COMPILER=$SN_BUILD/sentry-compile
POLICY=policies/demo.sentry
NS=sn-plan-$SN_ID

sn_install_traps
sn_daemon_dirs plan

sn_netns "$NS"
sn_veth "$NS" p0 "$NS" p0peer
if ! sn_sentryd_start "$NS" "$WORK/d.log" --iface p0 --policy "$POLICY" "${ROOTS[@]}"; then
	cat "$WORK/d.log"
	exit 1
fi
DAEMON=$SN_LAST_PID
sn_defer "nsenter --net=/run/netns/$NS $SENTRYCTL detach --iface p0 ${ROOTS[*]} >/dev/null 2>&1 || true"
sn_defer "sn_stop $DAEMON TERM"

plan() { # ARGS...: sets RC, output in $WORK/out
	RC=0
	"$COMPILER" --plan --live p0 "${ROOTS[@]}" "$@" >"$WORK/out" 2>&1 || RC=$?
}

plan "$POLICY"
if ((RC == 0)); then pass "the running policy plans as no change"; else
	fail "running policy: exit $RC"
	cat "$WORK/out"
fi

# One more /24 blocked: a rule-level change and 256 addresses.
cp "$POLICY" "$WORK/edited.sentry"
sed -i 's|^block from 203.0.113.0/24$|block from 203.0.113.0/24\nblock from 192.0.2.128/25|' \
	"$WORK/edited.sentry"
# The list file path is relative to the policy: keep it resolvable.
sed -i "s|\"../../shared/|\"$SN_REPO/../shared/|" "$WORK/edited.sentry"
plan "$WORK/edited.sentry"
if ((RC == 2)) && grep -q '192.0.2.128/25' "$WORK/out" &&
	grep -q 'newly blocks 128 IPv4 addresses' "$WORK/out"; then
	pass "an added rule plans as a change with its address space"
else
	fail "edited policy: exit $RC"
	cat "$WORK/out"
fi

# A saved image that no longer matches what is pinned is refused.
"$COMPILER" -o "$STATE_DIR/p0/policy.img" "$WORK/edited.sentry"
plan "$POLICY"
if ((RC == 1)); then pass "a saved image that disagrees with the pins is an error"; else
	fail "mismatching saved image: exit $RC"
	cat "$WORK/out"
fi

((failures == 0))
