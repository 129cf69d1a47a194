#!/usr/bin/env bash
# check.sh — the ctest gdb_task_backtrace: debugs gdb_target in gdb with
# tools/weft-gdb.py loaded and checks that `weft tasks` and `weft bt` show where each
# suspended task is, that the running task's `bt` ends cleanly at the context
# trampoline, and that the registers and stack memory gdb borrowed were given back
# exactly (the program then runs to its normal exit code).
#
#   check.sh GDB_TARGET WEFT_GDB_PY                 native, with gdb
#   check.sh GDB_TARGET WEFT_GDB_PY qemu-aarch64    an AArch64 build, run under
#                                                   qemu-aarch64 with gdb-multiarch
# shellcheck disable=SC2016  # the $ in gdb commands is gdb's, not the shell's
set -uo pipefail

target=${1:?usage: check.sh GDB_TARGET WEFT_GDB_PY [qemu-aarch64]}
script=${2:?usage: check.sh GDB_TARGET WEFT_GDB_PY [qemu-aarch64]}
mode=${3:-native}
name=gdb_task_backtrace

fail() {
  echo "$name: FAILED: $*" >&2
  exit 1
}

case $mode in
  native)
    gdb=gdb
    package=gdb
    arch=$(uname -m)
    ;;
  qemu-aarch64)
    gdb="gdb-multiarch"
    package="gdb-multiarch and qemu-user"
    arch=aarch64
    command -v qemu-aarch64 >/dev/null ||
      fail "qemu-aarch64 is not installed: install the Debian package qemu-user (apt-get install -y qemu-user)"
    ;;
  *) fail "unknown mode '$mode' (native or qemu-aarch64)" ;;
esac
command -v "$gdb" >/dev/null ||
  fail "$gdb is not installed: install the Debian package $package (apt-get install -y $package; make test installs gdb)"
[ -x "$target" ] || fail "no test program at $target"
[ -f "$script" ] || fail "no gdb extension at $script"

case $arch in
  x86_64) registers="rip rsp rbp rbx r12 r13 r14 r15" ;;
  aarch64) registers="pc sp x19 x20 x21 x22 x23 x24 x25 x26 x27 x28 x29 x30" ;;
  *) fail "weft-gdb.py supports x86-64 and AArch64, not $arch" ;;
esac

# LeakSanitizer cannot run under a debugger (it uses ptrace itself): in an ASan build,
# leaks are checked by the other tests.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

out=$(mktemp "${TMPDIR:-/tmp}/weft-gdb-check.XXXXXX")
core_out=$out.core-session
core=$out.core
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  rm -f "$out" "$core_out" "$core"
}
trap cleanup EXIT

# A digest of the loop's shared stack (where compact tasks' frames are copied in
# and out): `weft bt` of a compact task writes there and must put the bytes back.
shared_stack_digest='python
import hashlib
s = gdb.parse_and_eval("((weft_loop *)$weft_loop_for_check)->shared_stack")
lo, size = int(s["lo"]), int(s["size"])
print("shared-stack-digest " + hashlib.sha1(bytes(gdb.selected_inferior().read_memory(lo, size))).hexdigest())
end'

commands=(
  -ex 'set pagination off'
  -ex 'set width 0'
  -ex 'set confirm off'
  -ex 'break weft_gdb_breakpoint_here'
)
if [ "$mode" = qemu-aarch64 ]; then
  port=$((20000 + $$ % 20000))
  sysroot=/usr/aarch64-linux-gnu
  QEMU_LD_PREFIX=$sysroot qemu-aarch64 -g "$port" "$target" >>"$out" 2>&1 &
  qemu_pid=$!
  sleep 1
  commands+=(-ex "set sysroot $sysroot" -ex "target remote :$port" -ex continue)
else
  commands+=(-ex run)
fi
commands+=(-ex "source $script")
# A core file of the stopped program, for the post-mortem check at the end; not of a
# sanitized one, whose terabytes of shadow memory take minutes to dump. Made after
# weft-gdb.py is loaded: its hooks lift the stacks' guard pages, which gcore cannot
# read through (see tools/weft-gdb.py).
if [ "$mode" = native ] && ! grep -qa -e __asan_init -e __tsan_init "$target"; then
  commands+=(-ex "gcore $core")
fi
commands+=(
  -ex 'echo ==== registers before\n' -ex "info registers $registers"
  -ex 'echo ==== bt before\n' -ex 'bt'
  -ex 'set $weft_loop_for_check = weft__debug_loop()'
  -ex "$shared_stack_digest"
  -ex 'echo ==== weft tasks\n' -ex 'weft tasks'
  -ex 'echo ==== weft bt 2\n' -ex 'weft bt 2'
  -ex 'echo ==== weft bt other\n' -ex 'weft bt other'
  -ex 'echo ==== weft bt compact-a\n' -ex 'weft bt compact-a'
  -ex 'echo ==== weft bt compact-b\n' -ex 'weft bt compact-b'
  -ex 'echo ==== weft bt\n' -ex 'weft bt'
  -ex 'echo ==== registers after\n' -ex "info registers $registers"
  -ex 'echo ==== bt after\n' -ex 'bt'
  -ex "$shared_stack_digest"
  -ex 'echo ==== continue\n' -ex 'continue'
)

timeout 240 "$gdb" -batch -nx "${commands[@]}" "$target" >>"$out" 2>&1
status=$?
if [ -n "$qemu_pid" ]; then
  wait "$qemu_pid" 2>/dev/null
  qemu_pid=
fi
echo "---- gdb output"
cat "$out"
echo "----"
[ "$status" -eq 124 ] && fail "gdb did not finish within 240 s"

# section NAME — the lines gdb printed into $log after `echo ==== NAME`, up to the
# next marker.
log=$out
section() {
  awk -v want="==== $1" '/^==== / { on = ($0 == want); next } on' "$log"
}

grep -q "ptrace: Operation not permitted" "$out" &&
  fail "gdb may not trace processes here (ptrace is forbidden: a container without CAP_SYS_PTRACE?)"
grep -q "^Breakpoint 1, weft_gdb_breakpoint_here" "$out" ||
  fail "the program never stopped at weft_gdb_breakpoint_here"
if grep -Eq "Python Exception|Error occurred in Python|^weft: " "$out"; then
  fail "weft-gdb.py reported an error (see the gdb output above)"
fi

tasks=$(section "weft tasks")
grep -Eq '^\* +1 +Task-1 +running +weft_gdb_breakpoint_here' <<<"$tasks" ||
  fail "weft tasks does not show Task-1 running in weft_gdb_breakpoint_here"
grep -Eq '^ +2 +Task-2 +waiting +sleeper_deep_function \(depth=2\)' <<<"$tasks" ||
  fail "weft tasks does not show Task-2 waiting in sleeper_deep_function"
grep -Eq '^ +3 +other +waiting +other ' <<<"$tasks" ||
  fail "weft tasks does not show task 3 'other' waiting in other()"
grep -Eq '^ +3 +other +waiting +other .*\[waits on: sleep\]$' <<<"$tasks" ||
  fail "weft tasks does not say that task 3 'other' waits on a sleep"
grep -Eq '^ +4 +compact-a +waiting +compact_deep_function \(seconds=3\)' <<<"$tasks" ||
  fail "weft tasks does not show compact-a waiting in compact_deep_function"
grep -Eq '^ +5 +compact-b +waiting +compact_deep_function \(seconds=4\)' <<<"$tasks" ||
  fail "weft tasks does not show compact-b waiting in compact_deep_function"

# check_task_bt SECTION FUNCTION... — the backtrace has each function, in order, and
# ends at the trampoline with no complaint from gdb's unwinder. With the ucontext
# backend (WEFT_CTX=ucontext) the outermost frames are glibc's __start_context, whose
# end gdb may not find: only the trampoline is required there.
check_task_bt() {
  local which=$1 text previous=0 line
  shift
  text=$(section "$which")
  for fn in "$@"; do
    line=$(grep -n -m1 -E "^#[0-9]+ .*\b$fn \(" <<<"$text" | cut -d: -f1)
    [ -n "$line" ] || fail "'$which' has no frame in $fn"
    [ "$line" -gt "$previous" ] || fail "'$which' has $fn out of order"
    previous=$line
  done
  if grep -Eq '^#[0-9]+ .* ctx_trampoline \(' <<<"$text"; then
    return
  fi
  local frames
  frames=$(grep -E '^#[0-9]+ ' <<<"$text")
  [[ ${frames##*$'\n'} == *weft__ctx_trampoline* ]] ||
    fail "'$which' does not end at weft__ctx_trampoline"
  if grep -Eq 'Backtrace stopped|corrupt stack|previous frame identical|Cannot access memory' <<<"$text"; then
    fail "'$which' ends with an unwinding error"
  fi
}
check_task_bt "weft bt 2" weft_sleep sleeper_deep_function sleeper_middle sleeper task_entry
check_task_bt "weft bt other" weft_sleep other task_entry
check_task_bt "weft bt compact-a" weft_sleep compact_deep_function compact_sleeper task_entry
[[ $(section "weft bt compact-a") == *'compact_deep_function (seconds=3)'* ]] ||
  fail "'weft bt compact-a' shows another task's frames"
check_task_bt "weft bt compact-b" weft_sleep compact_deep_function compact_sleeper task_entry
[[ $(section "weft bt compact-b") == *'compact_deep_function (seconds=4)'* ]] ||
  fail "'weft bt compact-b' shows another task's frames"
check_task_bt "weft bt" weft_gdb_breakpoint_here main_task task_entry
check_task_bt "bt before" weft_gdb_breakpoint_here main_task task_entry

[ "$(section "registers before")" = "$(section "registers after")" ] ||
  fail "the registers differ after weft tasks / weft bt"
[ -n "$(section "registers before")" ] || fail "gdb printed no registers"
[ "$(section "bt before")" = "$(section "bt after")" ] ||
  fail "the running task's backtrace differs after weft tasks / weft bt"
[ "$(grep -c '^shared-stack-digest ' "$out")" -eq 2 ] || fail "could not read the shared stack"
[ "$(grep '^shared-stack-digest ' "$out" | sort -u | wc -l)" -eq 1 ] ||
  fail "the shared stack's bytes differ after weft bt of a compact task"

# gdb prints the exit code in octal: 07 is gdb_target's EXIT_ALL_FINISHED.
grep -Eq '^\[Inferior 1 \(.*\) exited with code 07\]' "$out" ||
  fail "the program did not run on to its normal exit (code 7) after the backtraces"
grep -q "gdb_target: all tasks finished" "$out" || fail "the program did not finish its tasks"

# Post mortem: in a core file registers cannot be written, so weft-gdb.py shows a
# task's frames through an unwinder instead.
if [ "$mode" = native ] && grep -q "^Saved corefile" "$out"; then
  [ -s "$core" ] || fail "gdb wrote no core file (gcore)"
  # gdb warns about the vsyscall page, which it can never read; any other mapping it
  # could not read is missing from the core (a guard page left in place does that).
  if grep "Memory read failed for corefile section" "$out" | grep -v " at 0xffffffffff600000\." >/dev/null; then
    fail "gcore could not read some mappings (the stacks' guard pages were not lifted?)"
  fi
  timeout 120 "$gdb" -batch -nx -ex 'set pagination off' -ex 'set width 0' -ex "source $script" \
    -ex 'echo ==== core weft tasks\n' -ex 'weft tasks' \
    -ex 'echo ==== core weft bt 2\n' -ex 'weft bt 2' \
    -ex 'echo ==== core weft bt compact-b\n' -ex 'weft bt compact-b' \
    -ex 'echo ==== core end\n' "$target" "$core" >"$core_out" 2>&1
  echo "---- gdb output, core file"
  cat "$core_out"
  echo "----"
  log=$core_out
  grep -Eq "Python Exception|Error occurred in Python" "$log" && fail "weft-gdb.py failed on the core file"
  grep -Eq '^ +2 +Task-2 +waiting +sleeper_deep_function \(depth=2\)' <<<"$(section "core weft tasks")" ||
    fail "weft tasks on the core file does not show Task-2 in sleeper_deep_function"
  check_task_bt "core weft bt 2" weft_sleep sleeper_deep_function sleeper_middle sleeper task_entry
  check_task_bt "core weft bt compact-b" weft_sleep compact_deep_function compact_sleeper task_entry
fi

echo "$name: ok"
