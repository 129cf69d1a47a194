#!/bin/sh
# run_cross.sh — cross-compiles a test program for AArch64 and runs it under qemu-user,
# so ctest checks the AArch64 context switch on an x86-64 machine.
#
# Usage: run_cross.sh CC QEMU OUTPUT ARG...
#   CC, QEMU  the cross compiler and emulator CMake found; empty or *-NOTFOUND means
#             "look on PATH now" (they may have been installed since configuring).
#   OUTPUT    the executable to build.
#   ARG...    compiler flags and sources; an argument containing '*' is expanded here,
#             so sources added later are picked up without re-running CMake.
# A missing tool is a failure, not a skip: it means the machine is not set up.
set -eu

want_cc=$1
want_qemu=$2
output=$3
shift 3

find_tool() {
    for candidate in "$@"; do
        case $candidate in "" | *-NOTFOUND) continue ;; esac
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

cc=$(find_tool "$want_cc" aarch64-linux-gnu-gcc) || cc=
qemu=$(find_tool "$want_qemu" qemu-aarch64 qemu-aarch64-static) || qemu=
if [ -z "$cc" ] || [ -z "$qemu" ]; then
    echo "run_cross.sh: cannot test AArch64: aarch64-linux-gnu-gcc ${cc:-missing}, qemu-aarch64 ${qemu:-missing}." >&2
    echo "Install the Debian packages: apt-get install gcc-aarch64-linux-gnu qemu-user" >&2
    exit 1
fi

# Rebuild the argument list with globs expanded, keeping other arguments intact.
count=$#
while [ "$count" -gt 0 ]; do
    arg=$1
    shift
    case $arg in
        *'*'*)
            # Empty IFS: expand the pattern without splitting paths at spaces.
            saved_ifs=$IFS
            IFS=
            for match in $arg; do
                set -- "$@" "$match"
            done
            IFS=$saved_ifs
            ;;
        *) set -- "$@" "$arg" ;;
    esac
    count=$((count - 1))
done

"$cc" -static -O2 -pthread -o "$output" "$@" -lm
exec "$qemu" "$output"
