# W3C WebDriver over curl: Debian's chromedriver driving Debian's headless
# chromium, with nothing from npm or PyPI.  Source it.  With WD_NS set, the
# driver, the browser and every request run in that network namespace
# (nsenter --net, host mount namespace), so the browser reaches addresses
# that exist only there.  Every call is bounded in time.
#
#   wd_start DIR            chromedriver on a free loopback port, a session
#   wd_get URL              navigate (waits for the load event)
#   wd_text CSS             the text of the first element matching CSS ("" if none)
#   wd_wait_text CSS SECS   poll until CSS has non-empty text; prints it
#   wd_eval JS              run synchronous JS, print its JSON result
#   wd_screenshot FILE      PNG of the viewport
#   wd_stop                 end the session and chromedriver

wd_port='' wd_sid='' wd_pid='' wd_dir=''

_wd_in() {
	if [[ -n ${WD_NS:-} ]]; then
		nsenter --net="/run/netns/$WD_NS" "$@"
	else
		"$@"
	fi
}

_wd() { # METHOD PATH [JSON]
	local data=${3:-}
	if [[ -n $data ]]; then
		_wd_in curl -sS --max-time 30 -X "$1" -H 'Content-Type: application/json' \
			-d "$data" "http://127.0.0.1:$wd_port$2"
	else
		_wd_in curl -sS --max-time 30 -X "$1" "http://127.0.0.1:$wd_port$2"
	fi
}

wd_start() {
	wd_dir=$1
	mkdir -p "$wd_dir/profile"
	wd_port=$((20000 + RANDOM % 20000))
	# Not through _wd_in: a function in the background is a subshell,
	# and $! would be that shell, not the driver.  nsenter without
	# --fork execs the driver, so $! is the driver either way.
	if [[ -n ${WD_NS:-} ]]; then
		nsenter --net="/run/netns/$WD_NS" chromedriver --port="$wd_port" \
			--allowed-ips=127.0.0.1 --log-path="$wd_dir/chromedriver.log" \
			>/dev/null 2>&1 &
	else
		chromedriver --port="$wd_port" --allowed-ips=127.0.0.1 \
			--log-path="$wd_dir/chromedriver.log" >/dev/null 2>&1 &
	fi
	wd_pid=$!
	local i
	for ((i = 0; i < 100; i++)); do
		_wd GET /status 2>/dev/null | jq -e '.value.ready' >/dev/null 2>&1 && break
		sleep 0.1
	done
	# The flags keep chromium from dialling out (this machine's network is
	# closed) and let it run as root in a container-like sandbox.
	local caps
	caps=$(jq -nc --arg prof "$wd_dir/profile" '{capabilities: {alwaysMatch: {
		browserName: "chrome", "goog:chromeOptions": {binary: "/usr/bin/chromium",
		args: ["--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--window-size=1280,1000",
		("--user-data-dir=" + $prof)]}}}}')
	wd_sid=$(_wd POST /session "$caps" | jq -r '.value.sessionId // empty')
	[[ -n $wd_sid ]] || { echo "webdriver: no session (see $wd_dir/chromedriver.log)" >&2; return 1; }
}

wd_get() { _wd POST "/session/$wd_sid/url" "$(jq -nc --arg u "$1" '{url: $u}')" >/dev/null; }

wd_eval() {
	_wd POST "/session/$wd_sid/execute/sync" \
		"$(jq -nc --arg s "$1" '{script: $s, args: []}')" | jq -c '.value'
}

wd_text() {
	wd_eval "const e = document.querySelector($(jq -nc --arg c "$1" '$c')); return e ? e.textContent : '';" |
		jq -r '.'
}

wd_wait_text() { # CSS SECS
	local t deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		t=$(wd_text "$1")
		[[ -n $t ]] && { printf '%s\n' "$t"; return 0; }
		sleep 0.2
	done
	return 1
}

wd_screenshot() { _wd GET "/session/$wd_sid/screenshot" | jq -r '.value' | base64 -d >"$1"; }

# Ends the session (the driver quits the browser), then the driver; a
# browser that outlived its session goes with its profile directory.
wd_stop() {
	if [[ -n $wd_sid ]]; then
		_wd DELETE "/session/$wd_sid" >/dev/null 2>&1 || true
	fi
	if [[ -n $wd_pid ]]; then
		kill "$wd_pid" 2>/dev/null || true
		wait "$wd_pid" 2>/dev/null || true # killed: exit 143
	fi
	if [[ -n $wd_dir ]]; then
		pkill -f -- "--user-data-dir=$wd_dir/profile" 2>/dev/null || true
	fi
	wd_sid='' wd_pid=''
	return 0
}

# wd_leftovers: the processes of this driver and its browser still running.
wd_leftovers() {
	pgrep -af -- "$wd_dir/" 2>/dev/null | grep -v -e pgrep -e "$$ " || true
}
