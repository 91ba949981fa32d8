#!/usr/bin/env bash
# Runs weft's fuzz targets (fuzz/, cargo-fuzz with libFuzzer), each for a given time, from
# the checked-in corpus (fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   run (default: 60 s, every target)
#   scripts/fuzz.sh --list                             the targets
#   scripts/fuzz.sh --minimize [TARGET...]             fold the seeds and what runs found
#                                                      into fuzz/corpus: merged (cmin), then
#                                                      at most 300 files per target
#
# A run writes what it finds to fuzz/target/fuzz-corpus/<target>/ (the checked-in corpus
# is only read) and a crash to fuzz/artifacts/<target>/; it ends non-zero when a target
# crashed or broke an invariant, naming the input, and with 3 (saying SKIPPED) when
# cargo-fuzz or a compiler that takes -Z flags is missing. Each target's figures (executions,
# exec/s, coverage, corpus) are printed at the end; the whole log is in
# fuzz/target/fuzz-logs/<target>.log. Reproduce a crash with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -O --debug-assertions --sanitizer none TARGET FILE
# (run in the repository's root; the crash then belongs in a unit test of the crate that
# owns the parser).
#
# Why the flags:
# - RUSTC_BOOTSTRAP=1: cargo-fuzz builds with -Z flags (coverage instrumentation for
#   libFuzzer) that only a nightly compiler takes; only the stable toolchain is installed
#   here, and it takes them with this variable. Nothing else in the project uses it.
# - --sanitizer none (FUZZ_SANITIZER=address to change it): ASan works here, but the
#   fuzzed parsers are safe Rust (the only unsafe code in these crates is fork, flock and
#   kill, which no target reaches), so it would check nothing that bounds checks do not
#   already, at a fifth of the speed (bgp_decode: ~30k exec/s with ASan, ~155k without).
# - --debug-assertions: integer overflow panics, as in tests, so arithmetic on hostile
#   numbers is caught rather than wrapped.
# - One job per target, targets one after the other: the machines have two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

fuzz_dir=fuzz
sanitizer=${FUZZ_SANITIZER:-none}
flags=(--fuzz-dir "$fuzz_dir" -O --debug-assertions --sanitizer "$sanitizer")

# Without the fuzzer's toolchain: say so, and exit 3 (scripts/test.sh skips the step then).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz --version 0.13.2 --locked); no fuzz target ran"
  exit 3
fi
if ! rustc -Z help >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: this rustc takes no -Z flags, even with RUSTC_BOOTSTRAP=1; no fuzz target ran"
  exit 3
fi

all_targets() { cargo fuzz list --fuzz-dir "$fuzz_dir"; }

# libFuzzer's input size limit: past one message (4096 bytes) for the BGP targets, so a
# largest message and a sequence of several fit; 4096 for the rest (libFuzzer's default).
max_len() {
  case "$1" in
    bgp_decode) echo 8200 ;;
    bgp_session) echo 20000 ;;
    *) echo 4096 ;;
  esac
}

if [ "${1:-}" = --list ]; then
  all_targets
  exit 0
fi

if [ "${1:-}" = --minimize ]; then
  # libFuzzer's merge (cargo fuzz cmin) of the seeds, the corpus and what runs found, cut
  # to at most FUZZ_CORPUS_FILES (300) files by fuzz/select_corpus.py: the seeds, then the
  # inputs adding the most coverage. It says how much of the full merge's coverage is kept.
  shift
  targets=("$@")
  ((${#targets[@]})) || mapfile -t targets < <(all_targets)
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  cargo run -q --manifest-path "$fuzz_dir/seeds/Cargo.toml" -- "$scratch/seeds"
  cargo fuzz build "${flags[@]}"
  bin="$fuzz_dir/target/$(rustc -vV | sed -n 's/^host: //p')/release"
  for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    found="$fuzz_dir/target/fuzz-corpus/$target"
    mkdir -p "$corpus" "$found"
    # what the corpus holds apart from the seeds (their names) joins the pool
    mkdir -p "$scratch/pool-$target"
    find "$corpus" -type f ! -name 'seed-*' -exec cp -t "$scratch/pool-$target" {} +
    echo "fuzz: $target: $(python3 "$fuzz_dir/select_corpus.py" "$bin/$target" "$scratch/seeds/$target" \
      "${FUZZ_CORPUS_FILES:-300}" "$corpus" "$scratch/pool-$target" "$found")"
  done
  exit 0
fi

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(all_targets)

build_started=$SECONDS
if ! cargo fuzz build "${flags[@]}" >/dev/null 2>"$fuzz_dir/.build.log"; then
  cat "$fuzz_dir/.build.log" >&2
  echo "fuzz: the fuzz targets do not build (above): no target was run" >&2
  exit 1
fi
rm -f "$fuzz_dir/.build.log"
echo "fuzz: built in $((SECONDS - build_started)) s; running ${targets[*]} for $seconds s each"

logs="$fuzz_dir/target/fuzz-logs"
mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
  found="$fuzz_dir/target/fuzz-corpus/$target"
  mkdir -p "$found" "$fuzz_dir/corpus/$target"
  log="$logs/$target.log"
  rm -f "$log" # a new file: another run of the same target keeps writing to its own
  started=$SECONDS
  status=0
  # The first corpus directory is where libFuzzer writes: the scratch one.
  cargo fuzz run "${flags[@]}" "$target" "$found" "$fuzz_dir/corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  elapsed=$((SECONDS - started))
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\/[0-9a-zA-Z]*\).*/cov \1, ft \2, corpus \3/p' <<<"$last")
  line="$target: $(stat number_of_executed_units) executions in ${elapsed} s ($(stat average_exec_per_sec) exec/s), ${cov:-no coverage line}"
  if ((status)); then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    line="$line; FAILED (exit $status): ${artifact:-see $log}"
    failed+=("$target")
    grep -aE "panicked at|^thread '|ERROR: libFuzzer" -A3 "$log" | head -20 >&2 || true
  fi
  echo "fuzz: $line"
  summary+=("$line")
done

echo "fuzz: summary ($sanitizer sanitizer; logs in $logs)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
