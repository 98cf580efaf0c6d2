#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq and JavaScript snippets are single-quoted on purpose
# The dashboard page (GET /dashboard, runtime/dashboard.html) in a real
# browser: Debian's headless Chromium, driven over WebDriver
# (tests/e2e/webdriver.bash), against sentryd enforcing on a veth in a
# network namespace.  Without reloading the page it must show the rules
# with the policy's checksum, a block rule's counter that grows while
# real packets from a blocked source arrive, drops in the chart, each
# reload in the history, and a failed reload's diagnostics while the old
# policy keeps enforcing.  A screenshot under traffic is kept as a test
# artifact: $BUILD/test-artifacts/dashboard.png.
#
# Exit 0 pass, 77 skip (not root, no chromium), 1 fail.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.bash
. "$(dirname "$0")/lib.bash"
# shellcheck source-path=SCRIPTDIR source=webdriver.bash
. "$(dirname "$0")/webdriver.bash"
sn_require_root
sn_require_build
for t in chromium chromedriver curl jq; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed (make deps)"; exit 77; }
done

cd "$SN_REPO"
ARTIFACTS=$SN_BUILD/test-artifacts
API=http://127.0.0.1:9747

sn_install_traps
sn_daemon_dirs dash

# The page may use nothing from outside the daemon: hosts that run a
# firewall often have no way out, and the API listens on loopback.
if grep -Eq '(src|href)="(https?:)?//|@import|url\(' runtime/dashboard.html; then
	fail "the dashboard loads something from outside sentryd"
else
	pass "the dashboard is self-contained"
fi

sn_demo_net_up
for ifc in srv-a srv-b; do
	sn_defer "'$SENTRYCTL' detach --iface $ifc --pin-root '$PIN_ROOT' --state-dir '$STATE_DIR'"
done
in_srv() { nsenter --net="/run/netns/$SN_NS_SRV" "$@"; }
api() { in_srv curl -sS --max-time 5 "$API$1"; }

cat >"$WORK/policy.sentry" <<'EOF'
default allow
block from 203.0.113.0/24
allow from 198.51.100.10
EOF
cat >"$WORK/sentryd.yaml" <<EOF
policy: $WORK/policy.sentry
interfaces:
  - name: srv-a
  - name: srv-b
pin_root: $PIN_ROOT
state_dir: $STATE_DIR
api:
  listen: 127.0.0.1:9747
EOF
sn_sentryd_start "$SN_NS_SRV" "$WORK/sentryd.log" --config "$WORK/sentryd.yaml" --iface srv-a --iface srv-b ||
	{ cat "$WORK/sentryd.log"; exit 1; }
sn_defer "sn_stop $SN_LAST_PID TERM"

WD_NS=$SN_NS_SRV
wd_start "$WORK/wd"
sn_defer "wd_stop"
wd_get "$API/dashboard"

block_id=$(api /v1/rules | jq -r '.[] | select(.text == "block from 203.0.113.0/24") | .id')
[[ -n $block_id ]] || { echo "no block rule in /v1/rules"; api /v1/rules; exit 1; }
packets_cell="[data-rule-id=\"$block_id\"] [data-packets]"
packets_js="const e = document.querySelector('$packets_cell'); return e ? Number(e.dataset.packets) : -1;"

if wd_wait_text "$packets_cell" 10 >/dev/null; then
	pass "the page lists the rules"
else
	fail "the page shows no row for rule $block_id"
fi
checksum=$(api /v1/status | jq -r '.checksum[0:12]')
status=$(wd_text "[data-status]")
if [[ $status == *"$checksum"* ]]; then
	pass "the header shows the enforced policy ($checksum)"
else
	fail "the header does not show checksum $checksum: $status"
fi

# Blocked packets from a real source, while the page stays open.
before=$(wd_eval "$packets_js")
ip netns exec "$SN_NS_CLA" ping -n -q -i 0.02 -c 100 -W 1 -I 203.0.113.66 "$SN_SRV_A4" >/dev/null 2>&1 || true
after=$before
deadline=$((SECONDS + 10))
while ((SECONDS < deadline)); do
	after=$(wd_eval "$packets_js")
	((after >= before + 100)) && break
	sleep 0.3
done
if ((after >= before + 100)); then
	pass "the block rule's counter went from $before to $after on the open page"
else
	fail "the block rule's counter went from $before to $after, not by 100"
fi
api_packets=$(api /v1/rules | jq --argjson id "$block_id" '.[] | select(.id == $id) | .packets')
if ((api_packets >= after)); then
	pass "the page agrees with /v1/rules ($api_packets)"
else
	fail "the page shows $after packets, the API $api_packets"
fi

# Drops in the chart: keep blocked traffic going for a few samples, and
# take the screenshot meanwhile.
ip netns exec "$SN_NS_CLA" ping -n -q -i 0.01 -c 400 -W 1 -I 203.0.113.66 "$SN_SRV_A4" >/dev/null 2>&1 &
pinger=$!
sn_defer "kill $pinger"
sleep 3
chart=$(wd_eval 'const s = document.querySelector("[data-chart=drops]"); return {samples: Number(s.dataset.samples), max: Number(s.dataset.max), lines: s.querySelectorAll("polyline").length};')
dropped_rate=$(wd_text "[data-tile=dropped]")
mkdir -p "$ARTIFACTS"
wd_screenshot "$ARTIFACTS/dashboard.png"
wait "$pinger" 2>/dev/null || true
if jq -e '.samples >= 2 and .max > 1 and .lines >= 1' <<<"$chart" >/dev/null; then
	pass "the chart draws the drops ($chart; dropped/s tile: $dropped_rate)"
else
	fail "the chart shows no drops: $chart"
fi
if [[ $(head -c 8 "$ARTIFACTS/dashboard.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] &&
	(($(stat -c %s "$ARTIFACTS/dashboard.png") > 10000)); then
	pass "screenshot saved: $ARTIFACTS/dashboard.png"
else
	fail "no screenshot in $ARTIFACTS/dashboard.png"
fi

# Reload history: an applied change appears at the top.
rows_js='return document.querySelectorAll("[data-reloads] tr").length;'
top_js='const r = document.querySelector("[data-reloads] tr"); return r ? r.dataset.reload : "";'
rows=$(wd_eval "$rows_js")
cat "$WORK/policy.sentry" >"$WORK/policy.new"
echo "block from 192.0.2.0/24" >>"$WORK/policy.new"
mv "$WORK/policy.new" "$WORK/policy.sentry"
history_grew() { (($(wd_eval "$rows_js") > rows)) && [[ $(wd_eval "$top_js") == '"ok"' ]]; }
if sn_wait_until 10000 history_grew; then
	pass "the applied change is at the top of the reload history"
else
	fail "the reload history did not show the change (rows $rows -> $(wd_eval "$rows_js"), top $(wd_eval "$top_js"))"
fi

# A broken policy: the page says so, with the diagnostics, and the old
# policy keeps enforcing.
alert_js='const a = document.querySelector("[data-alert]"); return getComputedStyle(a).display !== "none" ? document.querySelector("[data-alert-diagnostics]").textContent : "";'
alert_text() { wd_eval "$alert_js" | jq -r '.'; }
alert_has() { [[ $(alert_text) == *"$1"* ]]; }
alert_gone() { [[ -z $(alert_text) ]]; }
cp "$WORK/policy.sentry" "$WORK/policy.good"
{ cat "$WORK/policy.good"; echo "block from 10.0.0.1/8"; } >"$WORK/policy.bad"
mv "$WORK/policy.bad" "$WORK/policy.sentry"
sn_wait_until 10000 alert_has 'error[E003]' || true
diag=$(alert_text)
if [[ $diag == *"error[E003]"* ]]; then
	pass "a failed reload shows its diagnostics on the page"
else
	fail "the page shows no failed reload: '$diag'"
fi
verdict=$(sn_flow "$SN_NS_CLA" 203.0.113.66 "$SN_SRV_A4" icmp 1000)
if [[ $verdict == dropped ]]; then
	pass "the previous policy still blocks"
else
	fail "blocked source: $verdict"
fi
mv "$WORK/policy.good" "$WORK/policy.sentry"
if sn_wait_until 10000 alert_gone; then
	pass "the alert goes away once a good policy is applied"
else
	fail "the alert stayed after the policy was fixed"
fi

wd_stop
sleep 0.5
left=$(wd_leftovers)
if [[ -z $left ]]; then
	pass "no browser or driver process is left"
else
	fail "processes left behind: $left"
fi

if ! sn_alive "$SN_LAST_PID"; then
	fail "sentryd died"
	cat "$WORK/sentryd.log"
fi
((failures == 0)) || { echo "$failures check(s) failed"; exit 1; }
echo "dashboard: all checks passed"
