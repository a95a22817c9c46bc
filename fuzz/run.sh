#!/usr/bin/env bash
# Fuzzes each of connleak's untrusted-input parsers for a bounded time:
#
#   fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]   # default 120 s, every target
#
# Targets (fuzz_targets/): snapshot (a --from file, then the diagnosis and
# every renderer), proc_text (every /proc text parser), netlink (a sock_diag
# datagram), btf (kernel BTF, as the fd iterator reads it). Needs cargo-fuzz
# (`cargo install cargo-fuzz`) and a nightly toolchain for AddressSanitizer;
# without nightly it fuzzes on stable with no sanitizer (Rust's own checks
# still catch every panic and overflow).
#
# Seeds come from seeds/TARGET (real /proc files, real dump datagrams, saved
# snapshots, the records of a real kernel's BTF that the fd iterator reads,
# made by btf_seed.py); what the fuzzer learns stays in corpus/TARGET (not
# committed).
# A crash stops the run with the input in artifacts/TARGET/: copy it to
# regressions/TARGET/, where `cargo test` replays it (tests/fuzz_regressions.rs)
# once it is fixed.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-120}"
targets=(snapshot proc_text netlink btf)
if [ $# -gt 1 ]; then
  targets=("${@:2}")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
  exit 2
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=address
else
  fuzz=(cargo fuzz)
  sanitizer=none
fi
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== $target: $secs s, sanitizer $sanitizer"
  log="$(mktemp)"
  # -rss_limit_mb: a parser that allocates without bound fails the run.
  status=0
  "${fuzz[@]}" run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"$log" 2>&1 \
    || status=$?
  grep -E '^(INFO: seed|#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done)|ERROR|panicked|SUMMARY|artifact' "$log" || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a failing input: $(ls artifacts/$target/*)" >&2
    exit 1
  fi
  if [ "$status" -ne 0 ]; then
    # Not a finding: the build or the fuzzer itself failed. Show why.
    tail -n 20 "$log" >&2
    echo "fuzz: $target did not run (exit $status)" >&2
    exit 2
  fi
  rm -f "$log"
done
echo "fuzz: ${targets[*]} ran $secs s each without a failure"
