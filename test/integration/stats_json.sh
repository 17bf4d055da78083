#!/bin/sh
# malloc_stats_print's JSON ("J") parses as JSON, with and without the
# other option letters; stats_print:true with stats_print_opts:J prints
# valid JSON at exit; zero:true zeroes all new memory.
set -eu
: "${XALLOC_BUILDDIR:?}"
bin=$XALLOC_BUILDDIR/test/integration/mallctl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xalloc-json.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
check_json() { # file what
  if python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
x = d["xalloc"]
assert "stats" in x and x["stats"]["allocated"] > 0, "no stats"
' "$1"; then echo "ok: $2 is valid JSON"; else echo "FAIL: $2 is not valid JSON:"; head -c 2000 "$1"; failures=$((failures + 1)); fi
}
for opts in J Jg Jm Ja Jb Jl Jgmabl; do
  "$bin" json "$opts" > "$tmp/out.json"
  check_json "$tmp/out.json" "malloc_stats_print(\"$opts\")"
done
"$bin" json J > "$tmp/full.json"
if python3 -c 'import json, sys
x = json.load(open(sys.argv[1]))["xalloc"]
a = x["stats"]["arenas"]["0"]
assert len(a["bins"]) == x["arenas"]["nbins"], "bins"
assert a["huge"]["curhuge"] >= 1, "huge"
assert x["opt"]["lg_chunk"] == 21 and x["opt"]["thp"] == "default", "opt"
' "$tmp/full.json"; then echo "ok: JSON content"; else echo "FAIL: JSON content"; failures=$((failures + 1)); fi
XALLOC_CONF=stats_print:true,stats_print_opts:J "$bin" json "" > /dev/null 2> "$tmp/exit.json"
check_json "$tmp/exit.json" "the report at exit (stats_print_opts:J)"
XALLOC_CONF=stats_print:true,stats_print_opts:gb "$bin" json "" > /dev/null 2> "$tmp/exit.txt"
if grep -q "Begin xalloc statistics" "$tmp/exit.txt" && ! grep -q "Option table" "$tmp/exit.txt"; then
  echo "ok: stats_print_opts:gb honoured at exit"
else
  echo "FAIL: stats_print_opts:gb not honoured"; failures=$((failures + 1))
fi
if XALLOC_CONF=zero:true "$bin" zero; then echo "ok: zero:true"; else echo "FAIL: zero:true (exit $?)"; failures=$((failures + 1)); fi
[ "$failures" -eq 0 ]
