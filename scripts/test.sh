#!/usr/bin/env bash
# `make test`: installs the test dependencies, then builds and runs the whole suite in
# build/, again under AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/, the
# tests labelled `threads` under ThreadSanitizer in build-tsan/, and the install check.
# Every phase runs even when an earlier one failed (except those that need a build that
# failed); it ends with a one-line summary and exits non-zero if anything failed.
# shellcheck disable=SC2317  # the phase functions are called through phase "$@"
set -uo pipefail
cd "$(dirname "$0")/.." || exit

JOBS=${JOBS:-2}
CTEST_TIMEOUT=${CTEST_TIMEOUT:-600}   # seconds, for tests that set no TIMEOUT of their own

start_all=$(date +%s)
passed=()
failed=()
report=()

# phase NAME COMMAND... — runs one phase, timed, and records its outcome.
phase() {
  local name=$1 start status
  shift
  echo
  echo "==== make test: $name"
  start=$(date +%s)
  "$@"
  status=$?
  local seconds=$(($(date +%s) - start))
  if [ "$status" -eq 0 ]; then
    passed+=("$name")
    report+=("$(printf '  %-28s ok      %4ds' "$name" "$seconds")")
  else
    failed+=("$name")
    report+=("$(printf '  %-28s FAILED  %4ds  (status %d)' "$name" "$seconds" "$status")")
  fi
  echo "==== make test: $name: $([ "$status" -eq 0 ] && echo ok || echo FAILED) in ${seconds}s"
  return "$status"
}

skip() {
  failed+=("$1")
  report+=("$(printf '  %-28s SKIPPED        (%s)' "$1" "$2")")
}

summary() {
  local total=$(($(date +%s) - start_all))
  local elapsed
  elapsed=$(printf '%dm%02ds' $((total / 60)) $((total % 60)))
  echo
  echo "==== make test: phases"
  printf '%s\n' "${report[@]}"
  if [ ${#failed[@]} -eq 0 ]; then
    echo "make test: PASSED — all ${#passed[@]} phases in $elapsed"
    exit 0
  fi
  local names
  names=$(printf '%s, ' "${failed[@]}")
  echo "make test: FAILED — ${#failed[@]} of $((${#passed[@]} + ${#failed[@]})) phases failed (${names%, }) in $elapsed"
  exit 1
}

configure_and_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DWEFT_BUILD_TESTS=ON "$@" && cmake --build "$dir" -j"$JOBS"
}

run_ctest() {
  local dir=$1
  shift
  ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout "$CTEST_TIMEOUT" --no-tests=error "$@"
}

# Probes a sanitizer with a tiny program, so that a limit of the machine is told apart
# from a bug in weft: LeakSanitizer cannot run under ptrace (some CI containers), and
# ThreadSanitizer in GCC 12 aborts when the kernel randomizes mmap with more than 28
# bits (setarch -R, no address randomization, works around it).
probe_dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-probe.XXXXXX")
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <stdlib.h>\nint main(void) { free(malloc(8)); return 0; }\n' >"$probe_dir/probe.c"

asan_options="detect_leaks=1:abort_on_error=1"
asan_probe() {
  cc -fsanitize=address -o "$probe_dir/asan" "$probe_dir/probe.c" || return 0
  if ! ASAN_OPTIONS=$asan_options "$probe_dir/asan" >/dev/null 2>&1; then
    asan_options="detect_leaks=0:abort_on_error=1"
    echo "make test: WARNING: LeakSanitizer does not work on this machine (ptrace?); leak checks are off" >&2
  fi
}

tsan_prefix=()
tsan_probe() {
  cc -fsanitize=thread -o "$probe_dir/tsan" "$probe_dir/probe.c" || return 0
  "$probe_dir/tsan" >/dev/null 2>&1 && return 0
  if setarch "$(uname -m)" -R "$probe_dir/tsan" >/dev/null 2>&1; then
    tsan_prefix=(setarch "$(uname -m)" -R)
    echo "make test: ThreadSanitizer needs address randomization off here: running its tests under setarch -R"
  fi
}

phase "deps" bash scripts/deps.sh test || summary

if phase "build" configure_and_build build; then
  phase "ctest build" run_ctest build
else
  skip "ctest build" "build failed"
fi

asan_probe
if phase "build-asan" configure_and_build build-asan -DWEFT_SANITIZE=address,undefined; then
  ASAN_OPTIONS=$asan_options UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    phase "ctest build-asan" run_ctest build-asan
else
  skip "ctest build-asan" "build failed"
fi

tsan_probe
if phase "build-tsan" configure_and_build build-tsan -DWEFT_SANITIZE=thread; then
  # OpenSSL is not built with ThreadSanitizer: tests/tsan-openssl.supp says why it is quieted.
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan-openssl.supp \
    phase "ctest build-tsan -L threads" "${tsan_prefix[@]}" ctest --test-dir build-tsan --output-on-failure \
      -j"$JOBS" --timeout "$CTEST_TIMEOUT" --no-tests=error -L threads
else
  skip "ctest build-tsan -L threads" "build failed"
fi

if [[ " ${passed[*]} " == *" build "* ]]; then
  phase "install check" bash tests/install/check.sh build
else
  skip "install check" "build failed"
fi

summary
