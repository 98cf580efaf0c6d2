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
#   <case>.json-diag  sentry-compile --check --format json   <case>.sentry
#   <case>.sarif      sentry-compile --check --format sarif  <case>.sentry
#   <case>.github     sentry-compile --check --format github <case>.sentry
#   <case>.explain    sentry-compile --explain LINE <case>.sentry, once per
#                     line of <case>.explain-args (a line may start with
#                     "--format json "), each run headed by "$ explain LINE"
#   <case>.plan       sentry-compile --plan <case>.old <case>.sentry
#   <case>.plan-json  the same with --format json
#   <case>.plan-image the same with <case>.old compiled to an image first
#                     (its temporary path shows as "old.img")
#   <case>.fmt        sentry-compile fmt --stdout <case>.sentry; the run also
#                     checks that formatting is idempotent and that the
#                     formatted file has the same AST (locations aside)
#
#   config/<case>.config sentryd --check-config <case>.yaml (stdout+stderr,
#                        then "exit N"): every diagnostic of the daemon's
#                        configuration file (SPEC.md 6.4)
#
# Finally every shipped policy (policies/*.sentry) must be formatted, and the
# shipped configuration policies/sentryd.yaml must check.
#
# Commands run from tests/golden/<dir> with the relative case path, so
# locations in the output are stable.  UPDATE=1 rewrites the expected files;
# ONLY=<dir> (e.g. ONLY=cli) limits the run to tests/golden/<dir>/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
compiler=$(cd "$here/../.." && pwd)/${BUILD:-build}/sentry-compile
sentryd=$(cd "$here/../.." && pwd)/${BUILD:-build}/sentryd
[[ -x $compiler ]] || { echo "missing $compiler: run make" >&2; exit 1; }
[[ -x $sentryd ]] || { echo "missing $sentryd: run make" >&2; exit 1; }

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
		json-diag) "$compiler" --check --format json "$case.sentry" 2>&1; echo "exit $?" ;;
		sarif) "$compiler" --check --format sarif "$case.sentry" 2>&1; echo "exit $?" ;;
		github) "$compiler" --check --format github "$case.sentry" 2>&1; echo "exit $?" ;;
		explain)
			while IFS= read -r line; do
				[[ -n $line ]] || continue
				echo "\$ explain $line"
				if [[ $line == "--format json "* ]]; then
					"$compiler" --explain "${line#--format json }" --format json "$case.sentry" 2>&1
				else
					"$compiler" --explain "$line" "$case.sentry" 2>&1
				fi
				echo "exit $?"
			done <"$case.explain-args"
			;;
		fmt)
			"$compiler" fmt --stdout "$case.sentry" 2>&1
			rc=$?
			echo "exit $rc"
			if ((rc == 0)); then
				# Same meaning, and a fixed point: the AST of the
				# formatted text has the same nodes as the
				# original's (fmt lower-cases hex and orders
				# options, hence the case folding and sorting),
				# and fmt leaves it alone.
				tmp=".fmt-check-$$.sentry"
				"$compiler" fmt --stdout "$case.sentry" >"$tmp"
				ast() { "$compiler" --dump ast "$1" 2>/dev/null |
					sed -E '1d; s/ @[0-9]+:[0-9]+//g' |
					tr 'A-Z' 'a-z' | LC_ALL=C sort; }
				cmp -s <(ast "$case.sentry") <(ast "$tmp") ||
					echo "AST CHANGED BY FORMATTING"
				"$compiler" fmt --check "$tmp" >/dev/null ||
					echo "NOT IDEMPOTENT"
				rm -f "$tmp"
			fi
			;;
		plan) "$compiler" --plan "$case.old" "$case.sentry" 2>&1; echo "exit $?" ;;
		config) "$sentryd" --check-config "$case.yaml" 2>&1; echo "exit $?" ;;
		plan-json) "$compiler" --plan --format json "$case.old" "$case.sentry" 2>&1; echo "exit $?" ;;
		plan-image)
			tmp=$(mktemp -d)
			"$compiler" -o "$tmp/old.img" "$case.old" >/dev/null 2>&1 || echo "cannot compile $case.old"
			"$compiler" --plan "$tmp/old.img" "$case.sentry" 2>&1 | sed "s|$tmp/||g"
			echo "exit ${PIPESTATUS[0]}"
			rm -rf "$tmp"
			;;
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
	for kind in ast ir json consts check test json-diag sarif github explain plan plan-json plan-image fmt; do
		[[ -e $dir/$case.$kind ]] && check_one "$dir" "$case" "$kind"
	done
done < <(find "$here/${ONLY:-}" -name '*.sentry' ! -name '.fmt-check-*' | LC_ALL=C sort)

# sentryd's configuration diagnostics (the token's mode is part of a case:
# set it, whatever the checkout's umask made of it).
if [[ -z ${ONLY:-} || ${ONLY:-} == config ]]; then
	chmod 644 "$here/config/token.0644"
	while IFS= read -r src; do
		[[ -e ${src%.yaml}.config ]] || continue
		check_one "$(dirname "$src")" "$(basename "$src" .yaml)" config
	done < <(find "$here/config" -name '*.yaml' | LC_ALL=C sort)
fi

# The golden exposition (tests/unit/test_metrics compares sentryd's text
# with it) must be what Prometheus' own checker accepts.
if [[ -z ${ONLY:-} ]] && command -v promtool >/dev/null; then
	if promtool check metrics <"$here/metrics/exposition.prom" >/tmp/golden.$$.prom 2>&1; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL metrics/exposition.prom: promtool check metrics:"
		cat /tmp/golden.$$.prom
	fi
	rm -f /tmp/golden.$$.prom
fi

# Shipped policies are kept in the canonical layout.
if [[ -z ${ONLY:-} ]]; then
	if (cd "$here/../.." && "$compiler" fmt --check policies/*.sentry); then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL policies/*.sentry are not formatted (run: sentry-compile fmt policies/*.sentry)"
	fi
	if "$sentryd" --check-config "$here/../../policies/sentryd.yaml" >/dev/null; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL policies/sentryd.yaml does not check"
	fi
fi

echo "golden: $pass passed, $fail failed"
((fail == 0 && pass > 0))
