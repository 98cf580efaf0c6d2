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

# shellcheck source=../tests/e2e/lib.sh
. "$(dirname "$0")/../tests/e2e/lib.sh"

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
sn_defer "kill -TERM $SENTRYD_PID; wait $SENTRYD_PID"
sed 's/^/  /' "$WORK/sentryd.log"
echo

# client source service expected deciding-rule
# (deciding rule: a statement of the policy, or "default ipv4|ipv6")
FLOWS=(
	"A 203.0.113.66 tcp/22 dropped|block from 203.0.113.0/24"
	"A 203.0.113.66 tcp/80 dropped|block from 203.0.113.0/24"
	"A 203.0.113.66 icmp dropped|block from 203.0.113.0/24"
	"A 198.51.100.10 tcp/22 passed|allow from @office to tcp port 22"
	"A 198.51.100.10 udp/53 passed|default ipv4"
	"A 46.172.224.10 tcp/80 dropped|block from @country_ad"
	"A 46.172.224.10 udp/53 dropped|block from @country_ad"
	"B 203.0.113.7 tcp/22 passed|allow from 203.0.113.7"
	"B 203.0.113.7 tcp/80 passed|allow from 203.0.113.7"
	"B 192.0.2.50 tcp/22 dropped|block to tcp port 22"
	"B 192.0.2.50 tcp/80 passed|default ipv4"
	"B 192.0.2.50 udp/53 passed|default ipv4"
	"B 192.0.2.50 icmp passed|default ipv4"
	"B 2001:db8:1::b0 tcp/22 passed|allow from @office to tcp port 22"
	"B 2001:db8:2::50 tcp/22 dropped|block to tcp port 22"
	"B 2001:db8:2::50 tcp/80 passed|default ipv6"
)

# expected_id IFACE RULE: the rule id the counters should show.
expected_id() {
	case $2 in
	"default ipv4") echo 0 ;;
	"default ipv6") echo 1 ;;
	*)
		local line
		line=$(sn_policy_rule_line "$POLICY" "$2")
		awk -F'\t' -v l="$line" '{ n = split($3, p, ":"); if (n >= 3 && p[n-1] == l) { print $1; exit } }' \
			"$WORK/rules.$1"
		;;
	esac
}

for ifc in srv-a srv-b; do
	sn_rules "$PIN_ROOT" "$STATE_DIR" "$ifc" >"$WORK/rules.$ifc"
done

fmt='  %-15s %-21s %-9s %-9s %s\n'
# shellcheck disable=SC2059
printf "$fmt" SOURCE DESTINATION EXPECTED OBSERVED "DECIDED BY (kernel per-rule counters)"
total=0 good=0
for f in "${FLOWS[@]}"; do
	read -r client src svc expected <<<"${f%%|*}"
	rule=${f#*|}
	if [[ $client == A ]]; then
		ns=$SN_NS_CLA ifc=srv-a dst=$SN_SRV_A4
	else
		ns=$SN_NS_CLB ifc=srv-b dst=$SN_SRV_B4
		[[ $src == *:* ]] && dst=$SN_SRV_B6
	fi
	sn_counters "$PIN_ROOT" "$STATE_DIR" "$ifc" >"$WORK/before"
	observed=$(sn_flow "$ns" "$src" "$dst" "$svc" "$TIMEOUT_MS")
	sn_counters "$PIN_ROOT" "$STATE_DIR" "$ifc" >"$WORK/after"
	fam=4
	[[ $src == *:* ]] && fam=6
	# shellcheck disable=SC2046
	decider=$(sn_decider "$WORK/before" "$WORK/after" \
		$(sn_candidates "$WORK/rules.$ifc" "$observed" "$fam"))
	want=$(expected_id "$ifc" "$rule")
	decided="-"
	if [[ $decider != - ]]; then
		decided=$(awk -F'\t' -v id="$decider" '$1 == id {
			n = split($3, p, ":"); loc = (n >= 3 ? " (line " p[n-1] ")" : "")
			printf "#%s %s%s", $1, $4, loc }' "$WORK/rules.$ifc")
	fi
	total=$((total + 1))
	mark=""
	if [[ $observed == "$expected" && $decider == "$want" ]]; then
		good=$((good + 1))
	elif [[ $observed != "$expected" ]]; then
		mark="   <-- UNEXPECTED"
	else
		mark="   <-- expected rule #$want"
	fi
	# shellcheck disable=SC2059
	printf "$fmt" "$src" "$dst $svc" "$expected" "$observed" "$decided$mark"
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
