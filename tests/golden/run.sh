#!/usr/bin/env bash
# Golden tests: for every tests/golden/<dir>/<case>.sentry and every
# expected output beside it, run sentry-compile and diff.
#
#   <case>.ast    sentry-compile --dump ast    <case>.sentry  (stdout)
#   <case>.ir     sentry-compile --dump ir     <case>.sentry
#   <case>.json   sentry-compile --dump json   <case>.sentry
#   <case>.consts sentry-compile --dump constants <case>.sentry
#   <case>.check  sentry-compile --check       <case>.sentry  (stdout+stderr, then "exit N")
#   <case>.test   sentry-compile --test        <case>.sentry  (stdout+stderr, then "exit N")
#
# Commands run from tests/golden/<dir> with the relative case path, so
# locations in the output are stable.  UPDATE=1 rewrites the expected files.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
compiler=$(cd "$here/../.." && pwd)/${BUILD:-build}/sentry-compile
[[ -x $compiler ]] || { echo "missing $compiler: run make" >&2; exit 1; }

pass=0 fail=0
check_one() { # dir case kind
	local dir=$1 case=$2 kind=$3 expected actual
	expected="$dir/$case.$kind"
	actual=$(
		cd "$dir" || exit
		case $kind in
		ast | ir | json) "$compiler" --dump "$kind" "$case.sentry" 2>&1; echo "exit $?" ;;
		consts) "$compiler" --dump constants "$case.sentry" 2>&1; echo "exit $?" ;;
		check) "$compiler" --check "$case.sentry" 2>&1; echo "exit $?" ;;
		test) "$compiler" --test "$case.sentry" 2>&1; echo "exit $?" ;;
		esac
	)
	if [[ ${UPDATE:-0} == 1 ]]; then
		printf '%s\n' "$actual" >"$expected"
		pass=$((pass + 1))
	elif diff -u "$expected" <(printf '%s\n' "$actual") >/tmp/golden.$$.diff; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL ${expected#$here/}"
		head -n 40 /tmp/golden.$$.diff
	fi
	rm -f /tmp/golden.$$.diff
}

while IFS= read -r src; do
	dir=$(dirname "$src")
	case=$(basename "$src" .sentry)
	for kind in ast ir json consts check test; do
		[[ -e $dir/$case.$kind ]] && check_one "$dir" "$case" "$kind"
	done
done < <(find "$here" -name '*.sentry' | LC_ALL=C sort)

echo "golden: $pass passed, $fail failed"
((fail == 0 && pass > 0))
