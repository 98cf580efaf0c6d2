#!/usr/bin/env bash
# Hot reload end to end, with real TCP in network namespaces: sentryd
# follows every way a policy file changes and enforces the new policy, and
# a policy it cannot use changes nothing (SPEC.md 7 "sentryd").
#
# Phase 1, a policy directory with an include and a list file:
#   1. editor save (a new file renamed over the policy);
#   2. in-place write of the list file;
#   3. `mv` of a file from elsewhere over the include;
#   4. `git checkout` of another commit, and back;
#   5. a broken policy saved: the old verdicts stay, `sentryctl status`
#      shows the failure with sentry-compile's diagnostics; fixed: applied;
#   6. a file written in place in two halves with a pause: the half-written
#      file never enforces (it does not compile), the whole one does;
#   7. the list file vanishes: the old verdicts stay; it comes back: applied;
#   8. the include becomes a FIFO (unreadable): the old verdicts stay; a
#      regular file again: applied.
# Phase 2, a Kubernetes ConfigMap layout (policy.sentry -> ..data/... ,
# ..data -> ..<timestamp>): two swaps of the `..data` symlink by rename.
#
# Client A speaks from 203.0.113.66, 198.51.100.10 and 46.172.224.10 to the
# server's srv-a (tcp/80).  Exit 0 pass, 77 skip (not root), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build

cd "$SN_REPO"
TIMEOUT_MS=300

sn_install_traps
sn_daemon_dirs reload

sn_demo_net_up
sn_serve "$SN_NS_SRV" "$WORK/serve.log" --tcp 80
sn_defer "'$SENTRYCTL' detach --iface srv-a ${ROOTS[*]}"

flow() { # SRC: passed|dropped|error...
	sn_flow "$SN_NS_CLA" "$1" "$SN_SRV_A4" tcp/80 "$TIMEOUT_MS"
}

# expect SRC VERDICT WHAT: the flow gets VERDICT within 3 s.
expect() {
	local got i
	for ((i = 0; i < 10; i++)); do
		got=$(flow "$1")
		[[ $got == "$2" ]] && { pass "$3: $1 $2"; return 0; }
		sleep 0.1
	done
	fail "$3: $1 $got, expected $2"
}

# stays SRC VERDICT WHAT: the flow gets VERDICT now (no waiting for a change).
stays() {
	local got
	got=$(flow "$1")
	if [[ $got == "$2" ]]; then pass "$3: $1 still $2"; else fail "$3: $1 $got, expected $2 to stay"; fi
}

# Log lines of outcomes so far; wait_outcome N: until there are N.
outcomes() { grep -cE 'msg="(applied|policy [0-9a-f]{12} unchanged)|is invalid|cannot read policy|applying policy' "$LOG" || true; }
wait_outcome() {
	local want=$1 i
	for ((i = 0; i < 60; i++)); do
		(($(outcomes) >= want)) && return 0
		sleep 0.05
	done
	fail "sentryd did not react to the change (outcome $want):"
	tail -n 5 "$LOG" | sed 's/^/    /'
	return 1
}

status_has() { # REGEX WHAT
	local out
	out=$("$SENTRYCTL" status --iface srv-a "${ROOTS[@]}" 2>&1)
	if grep -Eq -- "$1" <<<"$out"; then pass "$2"; else
		fail "$2: sentryctl status lacks /$1/:"
		printf '    %s\n' "${out//$'\n'/$'\n'    }"
	fi
}

start_sentryd() { # POLICY LOGNAME
	LOG=$WORK/$2
	if ! sn_sentryd_start "$SN_NS_SRV" "$LOG" --iface srv-a --policy "$1" \
		"${ROOTS[@]}" --log-level debug; then
		echo "FAIL: sentryd did not attach:"
		cat "$LOG"
		exit 1
	fi
	SENTRYD_PID=$SN_LAST_PID
	sn_defer "sn_stop $SENTRYD_PID KILL"
}

# ---- phase 1: a policy directory ---------------------------------------------
D=$WORK/policy
mkdir -p "$D/lists"
cat >"$D/policy.sentry" <<'EOF'
default allow
include "inc.sentry"
set bad = file "lists/bad.cidr"
block from @bad
EOF
echo 'block from 46.172.224.0/24' >"$D/inc.sentry"
echo '203.0.113.66' >"$D/lists/bad.cidr"

start_sentryd "$D/policy.sentry" sentryd1.log
expect 203.0.113.66 dropped "initial"
expect 46.172.224.10 dropped "initial"
expect 198.51.100.10 passed "initial"
n=$(outcomes)

# 1. editor save: a swap file, then a new file renamed over the policy
WHAT="rename-on-save"
: >"$D/.policy.sentry.swp"
cat >"$D/policy.sentry.new" <<'EOF'
default allow
include "inc.sentry"
set bad = file "lists/bad.cidr"
block from @bad
block from 198.51.100.10
EOF
mv "$D/policy.sentry.new" "$D/policy.sentry"
rm -f "$D/.policy.sentry.swp"
expect 198.51.100.10 dropped "$WHAT"
stays 203.0.113.66 dropped "$WHAT"
n=$(outcomes)

# 2. in-place write of the list file
WHAT="in-place write of lists/bad.cidr"
printf '# emptied\n192.0.2.99\n' >"$D/lists/bad.cidr"
expect 203.0.113.66 passed "$WHAT"
stays 198.51.100.10 dropped "$WHAT"
n=$(outcomes)

# 3. mv over the include, from another directory
WHAT="mv over the include"
echo 'block from 203.0.113.0/24' >"$WORK/inc.sentry"
mv "$WORK/inc.sentry" "$D/inc.sentry"
expect 203.0.113.66 dropped "$WHAT"
expect 46.172.224.10 passed "$WHAT"
n=$(outcomes)

# 4. git checkout of another commit and back
WHAT="git checkout"
git_c() { git -C "$D" -c user.name=t -c user.email=t@example.invalid "$@" >/dev/null 2>&1; }
if git_c init -q && git_c add -A && git_c commit -q -m one; then
	git_c checkout -q -b two
	cat >"$D/policy.sentry" <<'EOF'
default allow
include "inc.sentry"
set bad = file "lists/bad.cidr"
block from @bad
EOF
	echo 'block from 46.172.224.0/24' >"$D/inc.sentry"
	git_c commit -q -am two
	wait_outcome $((n + 1)) || true
	expect 198.51.100.10 passed "$WHAT (branch two)"
	n=$(outcomes)
	git_c checkout -q master || git_c checkout -q main
	expect 198.51.100.10 dropped "$WHAT (back)"
	expect 46.172.224.10 passed "$WHAT (back)"
	expect 203.0.113.66 dropped "$WHAT (back)"
	rm -rf "$D/.git"
else
	echo "note: git cannot commit here; checkout not tested"
fi
n=$(outcomes)

# 5. a broken policy changes nothing
WHAT="broken policy"
cp "$D/policy.sentry" "$WORK/good.sentry"
cat >"$D/policy.sentry.new" <<'EOF'
default allow
block from 10.0.0.1/8
EOF
mv "$D/policy.sentry.new" "$D/policy.sentry"
wait_outcome $((n + 1)) || true
stays 198.51.100.10 dropped "$WHAT"
stays 203.0.113.66 dropped "$WHAT"
stays 46.172.224.10 passed "$WHAT"
if grep -q 'error\[E003\]: host bits set in 10.0.0.1/8' "$LOG"; then
	pass "$WHAT: diagnostics logged as sentry-compile prints them"
else
	fail "$WHAT: no E003 diagnostic in the log"
fi
status_has '^reload +failed at ' "$WHAT: sentryctl status says the reload failed"
status_has 'policy\.sentry:2:12: error\[E003\]' "$WHAT: sentryctl status shows the diagnostic"
status_has 'last good policy [0-9a-f]{12} stays enforced' "$WHAT: sentryctl status names the enforced policy"
n=$(outcomes)
cp "$WORK/good.sentry" "$D/policy.sentry.new"
mv "$D/policy.sentry.new" "$D/policy.sentry"
wait_outcome $((n + 1)) || true
status_has '^reload +(ok|unchanged) at ' "$WHAT: fixed"
n=$(outcomes)

# 6. written in place in two halves with a pause: the half never enforces
WHAT="half-written file"
{
	printf 'default allow\ninclude "inc.sentry"\nset bad = file "lists/bad.cidr"\nblock from @bad\nblock from 198.51'
	sleep 1.2
	printf '.100.10\nblock from 46.172.224.10\n'
} >"$D/policy.sentry" &
writer=$!
sleep 0.4 # past the settle time: the half has been compiled (and refused)
stays 46.172.224.10 passed "$WHAT (half)"
stays 198.51.100.10 dropped "$WHAT (half)"
wait "$writer"
expect 46.172.224.10 dropped "$WHAT (whole)"
n=$(outcomes)

# 7. a vanishing list file
WHAT="list file removed"
mv "$D/lists/bad.cidr" "$WORK/bad.cidr"
wait_outcome $((n + 1)) || true
stays 203.0.113.66 dropped "$WHAT"
stays 198.51.100.10 dropped "$WHAT"
status_has 'cannot read list file .*lists/bad\.cidr' "$WHAT: sentryctl status says which file"
n=$(outcomes)
echo '198.51.100.0/24' >"$D/lists/bad.cidr"
wait_outcome $((n + 1)) || true
expect 203.0.113.66 dropped "$WHAT, back (the include blocks it)"
status_has '^reload +ok at ' "$WHAT, back: applied"
n=$(outcomes)

# 8. an include that cannot be read (a FIFO)
WHAT="unreadable include"
mv "$D/inc.sentry" "$WORK/inc.keep"
mkfifo "$D/inc.sentry"
wait_outcome $((n + 1)) || true
stays 203.0.113.66 dropped "$WHAT"
status_has 'cannot read included file .*inc\.sentry: not a regular file' "$WHAT: named"
n=$(outcomes)
rm "$D/inc.sentry"
echo 'block from 198.51.100.10' >"$D/inc.sentry.new"
mv "$D/inc.sentry.new" "$D/inc.sentry"
expect 203.0.113.66 passed "$WHAT, replaced"
stays 198.51.100.10 dropped "$WHAT, replaced"

sn_stop "$SENTRYD_PID" TERM
"$SENTRYCTL" detach --iface srv-a "${ROOTS[@]}" >/dev/null

# ---- phase 2: a ConfigMap ----------------------------------------------------------
K=$WORK/configmap
mkdir -p "$K/..2024_01_01_00_00_00.1"
echo -e 'default allow\nblock from 203.0.113.66' >"$K/..2024_01_01_00_00_00.1/policy.sentry"
ln -s ..2024_01_01_00_00_00.1 "$K/..data"
ln -s ..data/policy.sentry "$K/policy.sentry"
start_sentryd "$K/policy.sentry" sentryd2.log
expect 203.0.113.66 dropped "configmap"
expect 198.51.100.10 passed "configmap"

swap() { # NAME CONTENT: what kubelet does
	mkdir "$K/$1"
	echo -e "$2" >"$K/$1/policy.sentry"
	ln -s "$1" "$K/..data_tmp"
	mv -T "$K/..data_tmp" "$K/..data"
	rm -rf "${K:?}/$3"
}
swap ..2024_01_01_00_01_00.2 'default allow\nblock from 198.51.100.10' ..2024_01_01_00_00_00.1
expect 198.51.100.10 dropped "configmap ..data swap"
expect 203.0.113.66 passed "configmap ..data swap"
swap ..2024_01_01_00_02_00.3 'default allow\nblock from 46.172.224.10' ..2024_01_01_00_01_00.2
expect 46.172.224.10 dropped "configmap second swap"
expect 198.51.100.10 passed "configmap second swap"

sn_stop "$SENTRYD_PID" TERM
if ((failures)); then
	echo "--- sentryd logs"
	cat "$WORK"/sentryd*.log
	echo "reload: $failures failures"
	exit 1
fi
echo "reload: all checks passed"
