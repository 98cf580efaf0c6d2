#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq programs are single-quoted on purpose
# sentryd's control surface end to end (SPEC.md 6.4-6.7), with real
# components: sentryd started from a YAML configuration in a network
# namespace, real TCP through XDP, the counters read back through
# GET /metrics, /v1/rules and a real Prometheus server (Debian's) that
# scrapes sentryd, `promtool check metrics` on the exposition, POST
# /v1/reload with and without the token (unchanged, invalid: 422 with the
# diagnostics, fixed: 200), malformed requests of every kind (the daemon
# keeps answering and enforcing), sentryctl over the API (tables and
# --json) and from the pins, JSON logs (one line per reload), sd_notify
# (READY=1, RELOADING=1, STOPPING=1, STATUS=) received on a socket of our
# own, and a restart listening on a unix socket.
#
# Everything listens inside the test's namespace (its own loopback).
# Exit 0 pass, 77 skip (not root, no prometheus), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
sn_require_root
sn_require_build
for t in curl jq promtool prometheus; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed (make deps)"; exit 77; }
done
NOTIFY_RECV=$SN_BUILD/tests/tools/notify_recv
[[ -x $NOTIFY_RECV ]] || { echo "missing $NOTIFY_RECV: run make" >&2; exit 1; }

cd "$SN_REPO"
PORT=9747
API=127.0.0.1:$PORT

sn_install_traps
sn_daemon_dirs api

check() { # WHAT CMD...: pass when CMD succeeds (its stdout dropped)
	local what=$1
	shift
	if "$@" >/dev/null; then pass "$what"; else fail "$what"; fi
}

sn_demo_net_up
sn_serve "$SN_NS_SRV" "$WORK/serve.log" --tcp 80
for ifc in srv-a srv-b; do
	sn_defer "'$SENTRYCTL' detach --iface $ifc --pin-root '$PIN_ROOT' --state-dir '$STATE_DIR'"
done
in_ns() { nsenter --net="/run/netns/$SN_NS_SRV" "$@"; }

# ---- configuration -------------------------------------------------------------
cat >"$WORK/policy.sentry" <<'EOF'
default allow
block from 203.0.113.0/24
allow from 198.51.100.10
EOF
cp "$WORK/policy.sentry" "$WORK/policy.good"
head -c 32 /dev/urandom | base64 >"$WORK/api.token"
chmod 600 "$WORK/api.token"
TOKEN=$(cat "$WORK/api.token")
write_config() { # LISTEN
	cat >"$WORK/sentryd.yaml" <<EOF
policy: $WORK/policy.sentry
interfaces:
  - name: srv-a
  - name: srv-b
    xdp_mode: generic
pin_root: $PIN_ROOT
state_dir: $STATE_DIR
api:
  listen: $1
  token_file: $WORK/api.token
log:
  format: json
  level: info
watch:
  enabled: false
EOF
}
write_config "$API"
check "the configuration checks (sentryd --check-config)" \
	"$SENTRYD" --check-config "$WORK/sentryd.yaml"

# An invalid configuration attaches nothing and exits 2.
sed 's/xdp_mode: generic/xdp_mode: turbo/' "$WORK/sentryd.yaml" >"$WORK/bad.yaml"
rc=0
in_ns "$SENTRYD" --config "$WORK/bad.yaml" >"$WORK/bad.out" 2>&1 || rc=$?
check "an invalid configuration exits 2" test "$rc" = 2
check "... with FILE:LINE:COL" grep -q "bad.yaml:5:15: error: 'xdp_mode' must be auto, native or generic, not 'turbo'" "$WORK/bad.out"
check "... and attaches nothing" bash -c "! ip -n '$SN_NS_SRV' link show dev srv-a | grep -q prog/xdp && [[ ! -e '$PIN_ROOT/srv-a' ]]"

# ---- start, under a NOTIFY_SOCKET of our own -------------------------------------
"$NOTIFY_RECV" "$WORK/notify.sock" 120 >"$WORK/notify.log" 2>&1 &
sn_defer "sn_stop $! KILL"
sn_wait_until 5000 grep -q '^ready$' "$WORK/notify.log" || { echo "FAIL: notify_recv did not start"; exit 1; }

start_sentryd() { # LOG
	LOG=$1
	NOTIFY_SOCKET=$WORK/notify.sock nsenter --net="/run/netns/$SN_NS_SRV" \
		"$SENTRYD" --config "$WORK/sentryd.yaml" 2>"$LOG" &
	SENTRYD_PID=$!
	sn_defer "sn_stop $SENTRYD_PID KILL"
	local want=$(($(grep -c '^READY=1' "$WORK/notify.log" || true) + 1))
	if ! sn_wait_until 10000 _ready "$want"; then
		echo "FAIL: no READY=1 from sentryd:"
		cat "$LOG" "$WORK/notify.log"
		exit 1
	fi
}
_ready() { (($(grep -c '^READY=1' "$WORK/notify.log" || true) >= $1)); }

start_sentryd "$WORK/sentryd1.log"
check "READY=1 with a STATUS= line" grep -qE '^READY=1 STATUS=enforcing policy [0-9a-f]{12} on 2 interfaces' "$WORK/notify.log"
# READY=1 promises both: every interface attached, and the API answers.
check "at READY=1 the API answers" in_ns curl -sf -o "$WORK/status.json" "http://$API/v1/status"
check "at READY=1 both interfaces enforce" sn_xdp_attached "$SN_NS_SRV" srv-b
check "/v1/status: pid, both interfaces with their modes" jq -e --argjson pid "$SENTRYD_PID" \
	'.pid == $pid and ([.interfaces[] | .name + ":" + .mode] == ["srv-a:native", "srv-b:generic"]) and (.checksum | length == 64)' "$WORK/status.json"

# ---- traffic, then the counters through every reader -----------------------------
for i in 1 2 3; do
	out=$(sn_flow "$SN_NS_CLA" 203.0.113.66 "$SN_SRV_A4" tcp/80 300)
	[[ $out == dropped ]] || fail "flow $i from 203.0.113.66: $out, expected dropped"
done
out=$(sn_flow "$SN_NS_CLA" 198.51.100.10 "$SN_SRV_A4" tcp/80 2000)
[[ $out == passed ]] || fail "flow from 198.51.100.10: $out, expected passed"

in_ns curl -sf "http://$API/metrics" >"$WORK/metrics.txt"
SERIES="sentry_rule_packets_total{interface=\"srv-a\",rule=\"4\",file=\"$WORK/policy.sentry\",line=\"2\",action=\"block\"}"
got=$(grep -F "$SERIES " "$WORK/metrics.txt" | awk '{ print $2 }' || true)
check "/metrics: the block rule counted the SYNs (${got:-none})" test "${got:-0}" -ge 3
check "/metrics: drops by reason policy" grep -qE '^sentry_drops_total\{interface="srv-a",reason="policy"\} [1-9]' "$WORK/metrics.txt"
check "/metrics: map occupancy" grep -qE '^sentry_map_entries\{interface="srv-b",map="sn_decisions"\} [1-9]' "$WORK/metrics.txt"
check "/metrics: range-trie occupancy from the layout" grep -qE '^sentry_map_entries\{interface="srv-a",map="sn_src4_nodes"\} [1-9]' "$WORK/metrics.txt"
check "/metrics: a policy_info per interface" test "$(grep -c '^sentry_policy_info{' "$WORK/metrics.txt")" = 2
if promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1; then
	pass "promtool check metrics"
else
	fail "promtool check metrics:"
	sed 's/^/    /' "$WORK/promtool.out"
fi
in_ns curl -sf "http://$API/v1/rules" >"$WORK/rules.json"
check "/v1/rules: the block rule with its location and counters" jq -e --arg f "$WORK/policy.sentry" \
	'.[] | select(.id == 4) | .file == $f and .line == 2 and .col == 1 and .action == "block" and .text == "block from 203.0.113.0/24" and .interfaces["srv-a"].packets >= 3 and .drop_reason == "policy"' "$WORK/rules.json"
in_ns curl -sf "http://$API/v1/rules?top=1" >"$WORK/top.json"
check "/v1/rules?top=1: the busiest rule only" jq -e 'length == 1' "$WORK/top.json"

# A real Prometheus scrapes sentryd, and the counter comes back through its
# query API.  Its own port and storage; nothing of the packaged service.
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: sentryd
    static_configs:
      - targets: ['$API']
EOF
# nsenter itself, not in_ns: a function in the background is a subshell,
# and $! would be that shell, leaving Prometheus running after the test.
nsenter --net="/run/netns/$SN_NS_SRV" prometheus --config.file="$WORK/prometheus.yml" \
	--storage.tsdb.path="$WORK/tsdb" --web.listen-address=127.0.0.1:9090 \
	>"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
sn_defer "sn_stop $PROM_PID KILL"
QUERY="sentry_rule_packets_total{interface=\"srv-a\",line=\"2\",action=\"block\"}"
prom_value() {
	in_ns curl -sf --get "http://127.0.0.1:9090/api/v1/query" --data-urlencode "query=$QUERY" |
		jq -r '.data.result[0].value[1] // empty' 2>/dev/null
}
_prom_has() { v=$(prom_value); [[ -n $v && $v -ge 3 ]]; }
if sn_wait_until 20000 _prom_has; then
	pass "Prometheus scraped sentryd: $QUERY = $(prom_value)"
else
	fail "Prometheus did not return $QUERY (got '$(prom_value)'):"
	tail -n 5 "$WORK/prometheus.log" | sed 's/^/    /'
fi
up=$(in_ns curl -sf --get "http://127.0.0.1:9090/api/v1/query" --data-urlencode 'query=up{job="sentryd"}' | jq -r '.data.result[0].value[1]')
check "Prometheus: the target is up" test "$up" = 1

# ---- POST /v1/reload ------------------------------------------------------------
post() { # OUT [CURL ARGS...]: prints the status code
	local out=$1
	shift
	in_ns curl -s -o "$out" -w '%{http_code}' -X POST "$@" "http://$API/v1/reload"
}
check "reload without a token: 401" test "$(post "$WORK/r.json")" = 401
check "... as a JSON error" jq -e '.error.code == 401 and (.error.message | length > 0)' "$WORK/r.json"
check "reload with a wrong token: 401" test "$(post "$WORK/r.json" -H 'Authorization: Bearer nottherighttokenatall')" = 401
check "reload with the token: 200 unchanged" test "$(post "$WORK/r.json" -H "Authorization: Bearer $TOKEN")" = 200
check "... result unchanged, trigger api" jq -e '.result == "unchanged" and .reload.trigger == "api"' "$WORK/r.json"

printf 'default allow\nblock from 203.0.113.1/24\n' >"$WORK/policy.sentry"
check "an invalid policy: 422" test "$(post "$WORK/r.json" -H "Authorization: Bearer $TOKEN")" = 422
check "... with sentry-compile's diagnostics" jq -e '.result == "failed" and (.diagnostics | test("policy.sentry:2:12: error\\[E003\\]"))' "$WORK/r.json"
in_ns curl -sf "http://$API/v1/policy" >"$WORK/policy.json"
check "/v1/policy: the failed reload, current" jq -e '.last_failed_reload.current == true and (.last_failed_reload.diagnostics | test("E003"))' "$WORK/policy.json"
out=$(sn_flow "$SN_NS_CLA" 203.0.113.66 "$SN_SRV_A4" tcp/80 300)
check "the last good policy still enforces ($out)" test "$out" = dropped
in_ns "$SENTRYCTL" status --config "$WORK/sentryd.yaml" >"$WORK/ctl-status.txt" 2>&1 || true
check "sentryctl status (API) shows the failure and its diagnostics" \
	grep -q 'the last reload failed: policy .* is invalid' "$WORK/ctl-status.txt"

printf 'default allow\nblock from 203.0.113.0/24\nblock from 198.51.100.10\n' >"$WORK/policy.sentry"
check "a fixed policy: 200" test "$(post "$WORK/r.json" -H "Authorization: Bearer $TOKEN")" = 200
check "... applied, entries written" jq -e '.result == "ok" and .reload.entries > 0 and .reload.rules == 6' "$WORK/r.json"
out=$(sn_flow "$SN_NS_CLA" 198.51.100.10 "$SN_SRV_A4" tcp/80 300)
check "the new policy enforces ($out)" test "$out" = dropped
in_ns curl -sf "http://$API/v1/reloads" >"$WORK/reloads.json"
check "/v1/reloads: newest first, start last" jq -e '[.[].result] == ["ok", "failed", "unchanged", "ok"] and .[-1].trigger == "start"' "$WORK/reloads.json"
in_ns curl -sf "http://$API/metrics" >"$WORK/metrics2.txt"
check "/metrics: reloads by result" grep -qE '^sentry_reloads_total\{interface="srv-a",result="failure"\} 1$' "$WORK/metrics2.txt"
check "/metrics: the duration histogram counted 3" grep -qE '^sentry_reload_duration_seconds_count\{interface="srv-a"\} 3$' "$WORK/metrics2.txt"
check "sd_notify: RELOADING=1 then READY=1 around reloads" bash -c \
	"grep -A1 '^RELOADING=1 MONOTONIC_USEC=' '$WORK/notify.log' | grep -q '^READY=1'"

# The log is JSON lines, one line per reload with its numbers.
check "every log line is JSON" jq -e . "$WORK/sentryd1.log" >/dev/null
check "one line per reload, with rules, entries and duration" jq -se \
	'[.[] | select(.event == "reload")] | length == 3 and (.[2] | .result == "ok" and .rules == 6 and .entries > 0 and .duration_ms > 0 and .trigger == "api")' \
	"$WORK/sentryd1.log"

# ---- bad requests: answered with 4xx and JSON, and nothing else changes ------------
code() { in_ns curl -s -o "$WORK/e.json" -w '%{http_code}' "$@"; }
expect_code() { # WANT WHAT CURL-ARGS...
	local want=$1 what=$2 got
	shift 2
	got=$(code "$@")
	if [[ $got == "$want" ]] && jq -e ".error.code == $want" "$WORK/e.json" >/dev/null 2>&1; then
		pass "$what: $got with a JSON error"
	else
		fail "$what: $got, expected $want with a JSON error: $(head -c 200 "$WORK/e.json")"
	fi
}
expect_code 404 "unknown path" "http://$API/v1/nothing"
expect_code 404 "path traversal" --path-as-is "http://$API/v1/../../etc/passwd"
expect_code 405 "DELETE /v1/rules" -X DELETE "http://$API/v1/rules"
check "... with an Allow header" bash -c "nsenter --net=/run/netns/$SN_NS_SRV curl -s -o /dev/null -D - -X PUT http://$API/metrics | grep -qi '^Allow: GET, HEAD'"
expect_code 405 "GET /v1/reload" "http://$API/v1/reload"
expect_code 400 "bad ?top" "http://$API/v1/rules?top=-1"
head -c 100000 /dev/zero | tr '\0' x >"$WORK/big"
expect_code 413 "a 100 kB body" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	--data-binary @"$WORK/big" "http://$API/v1/reload"
expect_code 415 "a text body" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' \
	-d 'reload please' "http://$API/v1/reload"
expect_code 400 "bad JSON" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"unterminated' "http://$API/v1/reload"
expect_code 400 "an unknown field" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"force":true}' "http://$API/v1/reload"
expect_code 414 "a 4 kB path" "http://$API/$(head -c 4000 /dev/zero | tr '\0' a)"
expect_code 401 "a token of 10 kB" -X POST -H "Authorization: Bearer $(head -c 10000 /dev/zero | tr '\0' a)" "http://$API/v1/reload"
# What MHD refuses before routing (headers over its 32 KiB) and bytes that
# are not HTTP: no crash, whatever the answer.
code -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" "http://$API/v1/status" >/dev/null || true
in_ns timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; head -c 3000 /dev/urandom >&3; cat <&3 >/dev/null" || true
in_ns timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n' >&3; cat <&3 >/dev/null" || true
for _ in $(seq 1 20); do in_ns curl -s -m 1 -o /dev/null "http://$API/v1/status" & done
wait_curls() { ! pgrep -P $$ -x curl >/dev/null; }
sn_wait_until 5000 wait_curls || true
check "after all of it sentryd is alive" sn_alive "$SENTRYD_PID"
check "... answers" in_ns curl -sf -o /dev/null "http://$API/v1/status"
out=$(sn_flow "$SN_NS_CLA" 203.0.113.66 "$SN_SRV_A4" tcp/80 300)
check "... and enforces ($out)" test "$out" = dropped
check "GET / serves the dashboard page" bash -c "nsenter --net=/run/netns/$SN_NS_SRV curl -sf http://$API/ | grep -q '<html'"

# ---- sentryctl over the API, and from the pins ---------------------------------------
CTL=("$SENTRYCTL")
check "sentryctl status (API): the daemon and the rule table" bash -c \
	"nsenter --net=/run/netns/$SN_NS_SRV ${CTL[*]} status --config '$WORK/sentryd.yaml' | grep -qE '^sentryd +pid $SENTRYD_PID' "
in_ns "${CTL[@]}" status --config "$WORK/sentryd.yaml" --iface srv-a >"$WORK/ctl.txt"
check "... the rule with its counters" grep -qE '^ +4 +block +[1-9][0-9]* +[0-9]+ +\S+policy.sentry:2:1 +block from 203.0.113.0/24$' "$WORK/ctl.txt"
in_ns "${CTL[@]}" status --json --config "$WORK/sentryd.yaml" >"$WORK/ctl.json"
check "sentryctl status --json (API)" jq -e '.source == "api" and .status.pid > 0 and (.rules | length == 6)' "$WORK/ctl.json"
in_ns "${CTL[@]}" rules --top 1 --json --config "$WORK/sentryd.yaml" >"$WORK/ctl-rules.json"
check "sentryctl rules --top 1 --json: the busiest rule" jq -e 'length == 1 and .[0].packets > 0' "$WORK/ctl-rules.json"
in_ns "${CTL[@]}" rules --top 2 --config "$WORK/sentryd.yaml" >"$WORK/ctl-rules.txt"
check "sentryctl rules --top 2: a table of 2 rules" test "$(grep -cE '^ +[0-9]+ ' "$WORK/ctl-rules.txt")" = 2
check "sentryctl reload (API, token from the configuration)" bash -c \
	"nsenter --net=/run/netns/$SN_NS_SRV ${CTL[*]} reload --config '$WORK/sentryd.yaml' | grep -q '^reload unchanged: policy'"
"$SENTRYCTL" status --source pins --json --iface srv-a --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" >"$WORK/pins.json"
check "sentryctl status --source pins --json" jq -e '.source == "pins" and .interfaces[0].name == "srv-a" and (.interfaces[0].rules | length == 6)' "$WORK/pins.json"
# From the host namespace no sentryd answers on the address: the pins.
"$SENTRYCTL" status --iface srv-a --pin-root "$PIN_ROOT" --state-dir "$STATE_DIR" >"$WORK/auto.txt"
check "sentryctl status falls back to the pins without a daemon" grep -q '^applied ' "$WORK/auto.txt"

# ---- restart on a unix socket ---------------------------------------------------------
sn_stop "$SENTRYD_PID" TERM
check "SIGTERM: exit 0" test "$SN_STOP_RC" = 0
check "sd_notify: STOPPING=1" grep -q '^STOPPING=1 STATUS=stopping' "$WORK/notify.log"
SOCK=$WORK/run/api.sock
write_config "unix:$SOCK"
start_sentryd "$WORK/sentryd2.log"
check "the adopted daemon answers on the unix socket" bash -c \
	"curl -sf --unix-socket '$SOCK' http://localhost/v1/status | jq -e '.interfaces | length == 2' >/dev/null"
check "... with mode 0660" test "$(stat -c %a "$SOCK")" = 660
check "... and the counters went on" bash -c \
	"curl -sf --unix-socket '$SOCK' http://localhost/metrics | grep -F 'sentry_rule_packets_total{interface=\"srv-a\",rule=\"4\"' | awk '{ exit !(\$2 >= 3) }'"
check "sentryctl over the unix socket" bash -c \
	"'$SENTRYCTL' status --config '$WORK/sentryd.yaml' | grep -q '^sentryd '"
sn_stop "$SENTRYD_PID" TERM
check "the socket file is removed on exit" test ! -e "$SOCK"
sn_stop "$PROM_PID" TERM
prometheus_gone() { ! pgrep -f -- "--config.file=$WORK/prometheus.yml" >/dev/null; }
check "Prometheus is gone with the test" prometheus_gone

if ((failures)); then
	echo "$failures failure(s)"
	exit 1
fi
echo "api: all passed"
