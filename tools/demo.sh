#!/usr/bin/env bash
# `make demo`: 47Sentry enforcing policies/demo.sentry on real traffic.
#
# Builds three network namespaces (a server and two clients, each client on
# its own veth link), runs sentryd on both server links, sends TCP, UDP,
# ICMP and IPv6 flows from every client source, and prints what was
# expected, what happened, and which rule decided - read from the kernel's
# per-rule counters via sentryctl, not from the policy.  Cleans everything
# up on success, failure and Ctrl-C.  Exit 0 when every flow behaved as the
# policy says, 1 otherwise.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib.bash
. "$(dirname "$0")/../tests/e2e/lib.bash"

if [[ $EUID -ne 0 ]]; then
	echo "demo: needs root (network namespaces and XDP); try: sudo make demo" >&2
	exit 1
fi
sn_require_build

# Relative, so rule locations read policies/demo.sentry:LINE:COL.
cd "$SN_REPO"
POLICY=policies/demo.sentry
PIN_ROOT=/sys/fs/bpf/47sentry-demo-$SN_ID
STATE_DIR=/tmp/47sentry-demo-$SN_ID
TIMEOUT_MS=800
WORK=$(mktemp -d /tmp/47sentry-demo-work.XXXXXX)

sn_install_traps
# Cleanup runs last-registered first: sentryd, detach, server, namespaces,
# then these directories (rm -rf of the pin root also drops any pin a
# failed detach left; deleting the namespaces removes the veths, and any
# XDP program with them).
sn_defer "rm -rf '$WORK' '$STATE_DIR'"
sn_defer "rm -rf '$PIN_ROOT'"
sn_bpffs_mounted

cat <<EOF
47Sentry demo  (run $SN_ID)

  sn-cla-$SN_ID [cla0]---[srv-a] sn-srv-$SN_ID [srv-b]---[clb0] sn-clb-$SN_ID
  client A: ${SN_CLA_SRCS[*]}
  client B: ${SN_CLB_SRCS[*]}
  server  : $SN_SRV_A4 (srv-a), $SN_SRV_B4 $SN_SRV_B6 (srv-b)
            echo on tcp/22 tcp/80 udp/53; sentryd on srv-a and srv-b

policy $POLICY:
EOF
grep -E '^[[:space:]]*(set|block|allow|always|default)[[:space:]]' "$POLICY" | sed 's/^/  /'
if [[ -x $SN_BUILD/sentry-compile ]]; then
	selftest=$("$SN_BUILD/sentry-compile" --test "$POLICY" 2>&1) || {
		echo "sentry-compile --test failed:" >&2
		echo "$selftest" >&2
		exit 1
	}
	echo "  ($(tail -n 1 <<<"$selftest" | sed "s|^$POLICY|expect lines|"))"
fi
echo

sn_demo_net_up
sn_serve "$SN_NS_SRV" "$WORK/serve.log" --tcp 22,80 --udp 53
for ifc in srv-a srv-b; do
	sn_defer "'$SENTRYCTL' detach --iface $ifc --pin-root '$PIN_ROOT' --state-dir '$STATE_DIR'"
done
if ! sn_sentryd_start "$SN_NS_SRV" "$WORK/sentryd.log" --iface srv-a --iface srv-b \
	--policy "$POLICY" --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR"; then
	echo "sentryd did not start:" >&2
	cat "$WORK/sentryd.log" >&2
	exit 1
fi
SENTRYD_PID=$SN_LAST_PID
sn_defer "sn_stop $SENTRYD_PID TERM"
sed 's/^/  /' "$WORK/sentryd.log"
echo

sn_demo_rules_snapshot "$PIN_ROOT" "$STATE_DIR" "$WORK"

fmt='  %-15s %-21s %-9s %-9s %s\n'
# shellcheck disable=SC2059
printf "$fmt" SOURCE DESTINATION EXPECTED OBSERVED "DECIDED BY (kernel per-rule counters)"
total=0 good=0
for f in "${SN_DEMO_FLOWS[@]}"; do
	sn_demo_flow "$f" "$POLICY" "$PIN_ROOT" "$STATE_DIR" "$WORK" "$TIMEOUT_MS"
	total=$((total + 1))
	mark=""
	if [[ $FLOW_OBSERVED == "$FLOW_EXPECTED" && $FLOW_DECIDER == "$FLOW_WANT" ]]; then
		good=$((good + 1))
	elif [[ $FLOW_OBSERVED != "$FLOW_EXPECTED" ]]; then
		mark="   <-- UNEXPECTED"
	else
		mark="   <-- expected rule #$FLOW_WANT"
	fi
	# shellcheck disable=SC2059
	printf "$fmt" "$FLOW_SRC" "$FLOW_DST $FLOW_SVC" "$FLOW_EXPECTED" \
		"$FLOW_OBSERVED" "$FLOW_DECIDED$mark"
done
echo

echo "sentryctl status (after the traffic above):"
"$SENTRYCTL" status --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" | sed 's/^/  /'

if ((good == total)); then
	echo "$total flows: $total as expected"
	exit 0
fi
echo "$total flows: $good as expected, $((total - good)) NOT" >&2
exit 1
