# shellcheck shell=bash
# shellcheck disable=SC2034 # SN_*/FLOW_* variables are outputs for the sourcing script
# Shared helpers of the end-to-end tests and tools/demo.sh: unique names,
# a cleanup stack run on every exit path, network namespaces joined by veth
# pairs, sentryd/probe lifecycles and reading sentryctl's counters.
#
# Source it from a script that runs `set -euo pipefail`.  (Named .bash, not
# .sh, because tests/run-all.sh runs every tests/e2e/*.sh as a test.)  Every wait here is
# bounded in time and in rounds; every address used lives in namespaces the
# caller created.
#
# Namespaces and bpffs: `ip netns exec` unshares the mount namespace and
# remounts /sys, so /sys/fs/bpf is empty in there and a bpffs mounted in it
# dies with that private mount namespace - taking the pinned link, and the
# enforcement, with it.  sentryd therefore runs under
# `nsenter --net=/run/netns/NS`, which switches only the network namespace:
# the interfaces are the namespace's, the pins land in the host's bpffs, and
# sentryctl (run from the host, no namespace needed: it only reads pins and
# detaches through the pinned link) sees them.  Clients and the echo server
# have no pins and use plain `ip netns exec`.

SN_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SN_BUILD=${BUILD:-build}
[[ $SN_BUILD == /* ]] || SN_BUILD=$SN_REPO/$SN_BUILD
SENTRYD=$SN_BUILD/sentryd
SENTRYCTL=$SN_BUILD/sentryctl
PROBE=$SN_BUILD/tests/tools/probe

# A short id unique to this run: names of namespaces, pin roots, state dirs.
SN_ID=$(printf '%x%04x' "$$" "$((RANDOM % 65536))")

# ---- a test's verdicts --------------------------------------------------------

# fail WHAT: counted, and the script ends with exit 1 when failures > 0;
# pass WHAT: said.  Scripts check many things and report all of them.
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# ---- cleanup stack -----------------------------------------------------------

SN_CLEANUP=()

# sn_defer CMD...: run CMD (as one string, eval'd) at exit, last in first out.
sn_defer() {
	SN_CLEANUP+=("$*")
}

# Runs once, on any exit (trap below); never fails the exit itself.
sn_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	local i
	for ((i = ${#SN_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${SN_CLEANUP[i]}" >/dev/null 2>&1
	done
	SN_CLEANUP=()
	return "$rc"
}

# Ctrl-C and kill become an ordinary exit, so the EXIT trap cleans up.
sn_install_traps() {
	trap sn_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# ---- preconditions -----------------------------------------------------------

# sn_require_root: exit 77 (skip) with the reason when we cannot run.
sn_require_root() {
	if [[ $EUID -ne 0 ]]; then
		echo "SKIP: needs root (network namespaces, BPF)"
		exit 77
	fi
	local t
	for t in ip nsenter ping; do
		command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
	done
}

# sn_require_build: the binaries must exist (a missing one is a failure).
sn_require_build() {
	local b
	for b in "$SENTRYD" "$SENTRYCTL" "$PROBE"; do
		[[ -x $b ]] || { echo "missing $b: run make" >&2; exit 1; }
	done
}

# sn_bpffs_mounted: the host bpffs the pins go to.
sn_bpffs_mounted() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

# sn_daemon_dirs TAG: where a test's sentryd keeps its state, unique to the
# run and removed on exit (after sn_install_traps): PIN_ROOT (bpffs,
# mounted if need be), STATE_DIR, a scratch WORK, and ROOTS, the two as
# sentryd/sentryctl options.
sn_daemon_dirs() {
	PIN_ROOT=/sys/fs/bpf/47sentry-$1-$SN_ID
	STATE_DIR=/tmp/47sentry-$1-$SN_ID
	WORK=$(mktemp -d "/tmp/47sentry-$1-work.XXXXXX")
	ROOTS=(--pin-root "$PIN_ROOT" --state-dir "$STATE_DIR")
	sn_defer "rm -rf '$WORK' '$STATE_DIR'"
	sn_defer "rm -rf '$PIN_ROOT'"
	sn_bpffs_mounted
}

# ---- waiting and processes -------------------------------------------------

# sn_wait_until TIMEOUT_MS CMD...: poll CMD every 50 ms; 0 when it succeeded.
sn_wait_until() {
	local ms=$1 i
	shift
	for ((i = 0; i < ms / 50 + 1; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# sn_alive PID: running (a zombie child, exited but not yet reaped by
# `wait`, counts as gone).
sn_alive() {
	local st
	st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}
_sn_dead() { ! sn_alive "$1"; }

# sn_is_child PID: PID is a live child of this shell (so never some other
# process that reused a PID we once had).
sn_is_child() {
	local f
	f=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	read -r -a f <<<"$f"
	[[ ${f[0]} != Z && ${f[1]} == "$$" ]]
}

# sn_stop PID [SIGNAL]: signal our child PID, wait up to 3 s, then SIGKILL;
# reap it and set SN_STOP_RC to its exit status.  Does nothing to a PID
# that is not our child any more.  Not in $(...): a subshell cannot reap.
sn_stop() {
	local pid=$1 sig=${2:-TERM} rc=0
	if sn_is_child "$pid"; then
		kill "-$sig" "$pid" 2>/dev/null || true
		sn_wait_until 3000 _sn_dead "$pid" ||
			{ sn_is_child "$pid" && kill -KILL "$pid" 2>/dev/null; } || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	SN_STOP_RC=$rc
}

# ---- namespaces and links ---------------------------------------------------

# sn_netns NAME: create a namespace (lo up), deleted at exit.
sn_netns() {
	ip netns add "$1"
	sn_defer "ip netns del '$1'"
	ip -n "$1" link set lo up
	# Quiet links: no router solicitations, so counters move only for the
	# traffic we send.
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.router_solicitations=0 \
		net.ipv6.conf.default.router_solicitations=0 >/dev/null || true
}

# sn_veth NS1 IF1 NS2 IF2: a veth pair between two namespaces, both up.
sn_veth() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

sn_mac() { # NS IF
	ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# sn_host_addr NS IF ADDR: a host address (/32 or /128, no DAD wait).
sn_host_addr() {
	if [[ $3 == *:* ]]; then
		ip -n "$1" addr add "$3/128" dev "$2" nodad
	else
		ip -n "$1" addr add "$3/32" dev "$2"
	fi
}

# sn_onlink NS IF DST MAC: reach DST directly over IF with a static
# neighbour entry, so no ARP/ND traffic muddies the per-rule counters.
sn_onlink() {
	local fam=-4
	[[ $3 == *:* ]] && fam=-6
	ip -n "$1" "$fam" route replace "$3" dev "$2"
	ip -n "$1" "$fam" neigh replace "$3" lladdr "$4" dev "$2" nud permanent
}

# sn_xdp_attached NS IF: is any XDP program on IF?
sn_xdp_attached() {
	ip -n "$1" link show dev "$2" | grep -q 'prog/xdp'
}

# ---- probe server and sentryd ---------------------------------------------

# sn_serve NS LOG ARGS...: start `probe serve` in NS; waits for "ready".
# Sets SN_LAST_PID.
sn_serve() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$PROBE" serve "$@" >"$log" 2>&1 &
	SN_LAST_PID=$!
	sn_defer "sn_stop $SN_LAST_PID KILL"
	if ! sn_wait_until 5000 grep -q '^ready$' "$log"; then
		echo "probe serve did not start:" >&2
		cat "$log" >&2
		return 1
	fi
}

# sn_sentryd_start NS LOG ARGS...: start sentryd in NS's network namespace
# (host mount namespace: see the top of this file) and wait until it logs
# an "attached to" line per --iface, or exits.  Sets SN_LAST_PID; returns 1
# when it did not come up.  The caller owns stopping it.
sn_sentryd_start() {
	local ns=$1 log=$2
	shift 2
	local n_if=0 a
	for a in "$@"; do [[ $a == --iface ]] && n_if=$((n_if + 1)); done
	nsenter --net="/run/netns/$ns" "$SENTRYD" "$@" 2>"$log" &
	SN_LAST_PID=$!
	sn_wait_until 10000 _sn_sentryd_settled "$SN_LAST_PID" "$log" "$n_if" || true
	sn_alive "$SN_LAST_PID" && _sn_attached "$log" "$n_if"
}

_sn_attached() { # LOG N: has sentryd logged N "attached to" lines?
	local n
	n=$(grep -c 'msg="attached to ' "$1" || true)
	((n >= $2))
}

_sn_sentryd_settled() { # PID LOG N: exited, or attached everywhere
	! sn_alive "$1" || _sn_attached "$2" "$3"
}

# ---- counters ----------------------------------------------------------------

# sn_counters PIN_ROOT STATE_DIR IF: "id packets" per rule, from sentryctl.
sn_counters() {
	"$SENTRYCTL" status --iface "$3" --pin-root "$1" --state-dir "$2" |
		awk 'hdr && $1 ~ /^[0-9]+$/ { print $1, $3 } /^ +RULE +VERDICT/ { hdr = 1 }'
}

# sn_rules PIN_ROOT STATE_DIR IF: "id<TAB>verdict<TAB>location<TAB>text".
sn_rules() {
	"$SENTRYCTL" status --iface "$3" --pin-root "$1" --state-dir "$2" |
		awk 'hdr && $1 ~ /^[0-9]+$/ {
			text = ""
			for (i = 6; i <= NF; i++) text = text (i > 6 ? " " : "") $i
			printf "%s\t%s\t%s\t%s\n", $1, $2, $5, text
		}
		/^ +RULE +VERDICT/ { hdr = 1 }'
}

# sn_decider BEFORE AFTER [ID...]: the rule whose packet count grew most
# between two sn_counters snapshots (ties: the lower id), among the given
# ids (default: all but rule 2, non-IP frames).  Callers pass the rules
# that could explain the outcome - the block rules for a dropped flow, the
# allow rules of the flow's family for a passed one - so stray IPv6
# multicast (MLD from a link coming up) counted on "default ipv6" cannot
# be mistaken for the decision.  Prints "-" when none grew.
sn_decider() {
	local before=$1 after=$2
	shift 2
	awk -v ids="$*" '
		BEGIN { n = split(ids, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		NR == FNR { before[$1] = $2; next }
		(n ? ($1 in want) : $1 != 2) {
			d = $2 - before[$1]
			if (d > best) { best = d; id = $1 }
		}
		END { print (best > 0 ? id : "-") }' "$before" "$after"
}

# sn_candidates RULES_FILE OUTCOME FAMILY: ids of the rules that could have
# decided a flow (see sn_decider); RULES_FILE from sn_rules, OUTCOME
# passed|dropped, FAMILY 4|6.
sn_candidates() {
	awk -F'\t' -v out="$2" -v fam="$3" '
		$1 == 2 || $1 == 3 { next }             # non-IP, malformed
		$1 == 0 && fam == 6 { next }            # the other default
		$1 == 1 && fam == 4 { next }
		(out == "dropped") == ($2 == "block") { printf "%s ", $1 }' "$1"
}

# sn_policy_rule_line POLICY TEXT: line of the statement TEXT in POLICY.
sn_policy_rule_line() {
	grep -n -x -F -- "$2" "$1" | head -n 1 | cut -d: -f1
}

# ---- the demo network --------------------------------------------------------
#
# A server namespace with two veth links, one per client namespace:
#
#   sn-cla-ID [cla0] ---- [srv-a] sn-srv-ID [srv-b] ---- [clb0] sn-clb-ID
#
# Client A speaks from 203.0.113.66 (blocked /24), 198.51.100.10 (office)
# and 46.172.224.10 (Andorra, from the real country list); client B from
# 203.0.113.7 (the allowed /32), 192.0.2.50 (neutral), 2001:db8:1::b0
# (office v6) and 2001:db8:2::50 (neutral v6).  Every address is a host
# route over its link with a static neighbour, so no ARP/ND is needed.

SN_SRV_A4=192.0.2.1
SN_SRV_B4=192.0.2.2
SN_SRV_B6=2001:db8:f::2
SN_CLA_SRCS=(203.0.113.66 198.51.100.10 46.172.224.10)
SN_CLB_SRCS=(203.0.113.7 192.0.2.50 2001:db8:1::b0 2001:db8:2::50)

# sn_demo_net_up: build it; sets SN_NS_SRV, SN_NS_CLA, SN_NS_CLB.
sn_demo_net_up() {
	SN_NS_SRV=sn-srv-$SN_ID
	SN_NS_CLA=sn-cla-$SN_ID
	SN_NS_CLB=sn-clb-$SN_ID
	sn_netns "$SN_NS_SRV"
	sn_netns "$SN_NS_CLA"
	sn_netns "$SN_NS_CLB"
	sn_veth "$SN_NS_SRV" srv-a "$SN_NS_CLA" cla0
	sn_veth "$SN_NS_SRV" srv-b "$SN_NS_CLB" clb0

	local srv_a srv_b cla clb s
	srv_a=$(sn_mac "$SN_NS_SRV" srv-a)
	srv_b=$(sn_mac "$SN_NS_SRV" srv-b)
	cla=$(sn_mac "$SN_NS_CLA" cla0)
	clb=$(sn_mac "$SN_NS_CLB" clb0)

	sn_host_addr "$SN_NS_SRV" srv-a "$SN_SRV_A4"
	sn_host_addr "$SN_NS_SRV" srv-b "$SN_SRV_B4"
	sn_host_addr "$SN_NS_SRV" srv-b "$SN_SRV_B6"
	sn_onlink "$SN_NS_CLA" cla0 "$SN_SRV_A4" "$srv_a"
	sn_onlink "$SN_NS_CLB" clb0 "$SN_SRV_B4" "$srv_b"
	sn_onlink "$SN_NS_CLB" clb0 "$SN_SRV_B6" "$srv_b"
	for s in "${SN_CLA_SRCS[@]}"; do
		sn_host_addr "$SN_NS_CLA" cla0 "$s"
		sn_onlink "$SN_NS_SRV" srv-a "$s" "$cla"
	done
	for s in "${SN_CLB_SRCS[@]}"; do
		sn_host_addr "$SN_NS_CLB" clb0 "$s"
		sn_onlink "$SN_NS_SRV" srv-b "$s" "$clb"
	done
}

# sn_flow CLIENT_NS SRC DST SERVICE TIMEOUT_MS: send one flow; prints
# "passed", "dropped" or "error: ..." (a broken test, never a verdict).
# SERVICE is tcp/PORT, udp/PORT or icmp.
sn_flow() {
	local ns=$1 src=$2 dst=$3 svc=$4 tmo=$5 out rc=0
	case $svc in
	tcp/* | udp/*)
		local cmd=tcp-connect
		[[ $svc == udp/* ]] && cmd=udp
		out=$(ip netns exec "$ns" "$PROBE" "$cmd" --src "$src" --dst "$dst" \
			--port "${svc#*/}" --timeout-ms "$tmo" 2>&1) || rc=$?
		;;
	icmp)
		local fam=-4 secs=$(((tmo + 999) / 1000))
		[[ $dst == *:* ]] && fam=-6
		out=$(ip netns exec "$ns" ping "$fam" -n -q -c 1 -W "$secs" -I "$src" "$dst" 2>&1) || rc=$?
		# ping: 0 reply, 1 no reply, 2 other error.
		((rc == 1)) && out=timeout
		;;
	*)
		echo "error: unknown service $svc"
		return
		;;
	esac
	if ((rc == 0)); then
		echo passed
	elif ((rc == 1)) && [[ $out == *timeout* ]]; then
		echo dropped
	else
		echo "error: ${out//$'\n'/ }"
	fi
}

# The demo's flows: "CLIENT SOURCE SERVICE EXPECTED|DECIDING RULE", the
# deciding rule being a statement of policies/demo.sentry as written, or
# "default ipv4" / "default ipv6".  Used by tools/demo.sh and
# tests/e2e/demo_traffic.sh, so the demo shows what the test asserts.
SN_DEMO_FLOWS=(
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

# sn_demo_rules_snapshot PIN_ROOT STATE_DIR WORK: WORK/rules.IF per link.
sn_demo_rules_snapshot() {
	local ifc
	for ifc in srv-a srv-b; do
		sn_rules "$1" "$2" "$ifc" >"$3/rules.$ifc"
	done
}

# sn_rule_id_at RULES_FILE LINE: id of the rule whose location is on LINE.
sn_rule_id_at() {
	awk -F'\t' -v l="$2" '{
		n = split($3, p, ":")
		if (n >= 3 && p[n - 1] == l) { print $1; exit }
	}' "$1"
}

# sn_demo_flow FLOW POLICY PIN_ROOT STATE_DIR WORK TIMEOUT_MS: send one
# flow of SN_DEMO_FLOWS and work out which rule decided it from the
# counters of the link it crossed.  Sets FLOW_SRC FLOW_DST FLOW_SVC
# FLOW_IF FLOW_EXPECTED FLOW_OBSERVED FLOW_WANT (expected rule id)
# FLOW_DECIDER (observed rule id or "-") and FLOW_DECIDED (its description).
sn_demo_flow() {
	local flow=$1 policy=$2 pin=$3 state=$4 work=$5 tmo=$6
	local client ns fam line
	read -r client FLOW_SRC FLOW_SVC FLOW_EXPECTED <<<"${flow%%|*}"
	local rule=${flow#*|}
	if [[ $client == A ]]; then
		ns=$SN_NS_CLA FLOW_IF=srv-a FLOW_DST=$SN_SRV_A4
	else
		ns=$SN_NS_CLB FLOW_IF=srv-b FLOW_DST=$SN_SRV_B4
		[[ $FLOW_SRC == *:* ]] && FLOW_DST=$SN_SRV_B6
	fi
	fam=4
	[[ $FLOW_SRC == *:* ]] && fam=6
	local rules=$work/rules.$FLOW_IF
	case $rule in
	"default ipv4") FLOW_WANT=0 ;;
	"default ipv6") FLOW_WANT=1 ;;
	*)
		line=$(sn_policy_rule_line "$policy" "$rule")
		FLOW_WANT=$(sn_rule_id_at "$rules" "${line:-0}")
		FLOW_WANT=${FLOW_WANT:-"?"}
		;;
	esac

	sn_counters "$pin" "$state" "$FLOW_IF" >"$work/before"
	FLOW_OBSERVED=$(sn_flow "$ns" "$FLOW_SRC" "$FLOW_DST" "$FLOW_SVC" "$tmo")
	sn_counters "$pin" "$state" "$FLOW_IF" >"$work/after"
	# shellcheck disable=SC2046
	FLOW_DECIDER=$(sn_decider "$work/before" "$work/after" \
		$(sn_candidates "$rules" "$FLOW_OBSERVED" "$fam"))
	FLOW_DECIDED=-
	if [[ $FLOW_DECIDER != - ]]; then
		FLOW_DECIDED=$(awk -F'\t' -v id="$FLOW_DECIDER" '$1 == id {
			n = split($3, p, ":")
			printf "#%s %s%s", $1, $4, (n >= 3 ? " (line " p[n - 1] ")" : "")
		}' "$rules")
	fi
}
