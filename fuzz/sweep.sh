#!/usr/bin/env bash
# A long fuzzing sweep: every target for SECONDS seconds, JOBS targets at a time, continuing past
# crashes (libFuzzer's fork mode with -ignore_crashes/-ignore_timeouts/-ignore_ooms), then each
# saved crash input replayed once and grouped by where it panicked.
#
#   fuzz/sweep.sh [SECONDS=600] [JOBS=2] [TARGET...]
#
# Needs the fuzz build (`cargo +nightly fuzz build --fuzz-dir fuzz --target-dir fuzz/target`).
# Logs: fuzz/target/sweep/<target>.log; crash inputs: fuzz/artifacts/<target>/; the summary
# (executions, coverage, crashes and their distinct panic sites) is printed and written to
# fuzz/target/sweep/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
jobs=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(parquet ipc_file ipc_stream csv tar npy image job_spec)
fi
bin=fuzz/target/x86_64-unknown-linux-gnu/release
out=fuzz/target/sweep
mkdir -p "$out"
for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "missing fuzz build of $t ($bin/$t)" >&2; exit 2; }
done

run_one() {
  local t=$1
  mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t"
  "$bin/$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" \
    -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" -timeout=10 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    > "$out/$t.log" 2>&1 || true
}
export -f run_one
export bin out seconds
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'

# Where a crash input panics (file:line of the first panic, or the sanitizer's verdict).
site_of() {
  local t=$1 input=$2 out site
  out=$(timeout 60 "$bin/$t" "$input" 2>&1 || true)
  site=$(grep -m1 -oE "panicked at [^ ]+:[0-9]+|ERROR: AddressSanitizer: [a-z-]+|out-of-memory|timeout" \
    <<<"$out" || true)
  echo "${site:-no crash on replay}" | sed -E 's|/root/.cargo/registry/src/[^/]+/||'
}

{
  echo "| target | executions | coverage (edges) | corpus units | crash inputs | distinct sites |"
  echo "|---|---:|---:|---:|---:|---|"
  for t in "${targets[@]}"; do
    last=$(grep -E '^#[0-9]+' "$out/$t.log" | tail -1 || true)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    units=$(find "fuzz/target/corpus/$t" -type f | wc -l)
    inputs=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    sites=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) \
      | while read -r f; do site_of "$t" "$f"; done | sort | uniq -c | sort -rn \
      | awk '{c=$1; $1=""; printf "%s%s x%d", sep, substr($0,2), c; sep="; "}')
    echo "| \`$t\` | ${execs:-0} | ${cov:-0} | $units | $inputs | ${sites:-none} |"
  done
} | tee "$out/summary.md"
