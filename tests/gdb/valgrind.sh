#!/usr/bin/env bash
# valgrind.sh — the ctest valgrind_smoke: runs valgrind_target under memcheck and
# fails on any error memcheck reports (weft tells valgrind about its task stacks, so
# switching between them must look like ordinary calls) or on memory lost for good.
#
#   valgrind.sh VALGRIND_TARGET
set -uo pipefail

target=${1:?usage: valgrind.sh VALGRIND_TARGET}
name=valgrind_smoke

if ! command -v valgrind >/dev/null; then
  echo "$name: FAILED: valgrind is not installed: install the Debian package valgrind" \
    "(apt-get install -y valgrind; make test installs it), then rebuild so weft sees <valgrind/valgrind.h>" >&2
  exit 1
fi

# Memory still reachable at exit (a thread's last error message) is not a leak.
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --track-origins=yes "$target"
status=$?
if [ "$status" -ne 0 ]; then
  echo "$name: FAILED: status $status: memcheck reported errors (above), or the program failed" >&2
  exit 1
fi
echo "$name: ok"
