#!/usr/bin/env bash
# Checks that an installed weft can be used: installs a build into a temporary prefix, then
# builds hello.c with pkg-config (shared, then static) and with CMake's find_package
# (weft::weft, then weft::weft_shared), runs each program and checks what it prints.
#
#   tests/install/check.sh [BUILD_DIR]      (default: build, at the repository root)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
[ -f "$build/CMakeCache.txt" ] || { echo "install check: $build is not a configured build (run make build)" >&2; exit 1; }
build=$(cd "$build" && pwd)
CC=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-install-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step() { echo "install check: $*"; }
fail() { echo "install check: FAILED: $*" >&2; exit 1; }

# Runs a hello program and compares its output with what hello.c must print: the shorter
# sleep first, then both results in argument order after 0.2 s, not the 0.3 s of the sum.
run_hello() {
  local output
  output=$("$@" 2>&1) || fail "$* exited with status $?: $output"
  local expected_re=$'^hello\nworld\ngathered hello, world in 0\\.[23] s$'
  [[ $output =~ $expected_re ]] || fail "$* printed:"$'\n'"$output"
  step "ran $(basename "$1"): ok"
}

# Tells whether a program loads libweft.so at run time. ldd's output is captured
# whole first: under pipefail, a reader that quits at the first match would kill
# ldd with SIGPIPE at random and fail the check.
links_shared_weft() {
  local libs
  libs=$(ldd "$1" 2>/dev/null) || true
  [[ $libs == *libweft.so* ]]
}

# The README shows hello.c verbatim; keep them one text so the README shows tested code.
readme_hello=$(awk '/^## Hello, world/ { section = 1 } section && /^```c$/ { code = 1; next }
                    code && /^```$/ { exit } code' "$root/README.md")
[ "$readme_hello" = "$(cat "$here/hello.c")" ] || fail "README.md's hello world differs from tests/install/hello.c"

step "installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "cmake --install"; }

pc_file=$(find "$prefix" -name weft.pc -path '*/pkgconfig/*' -print -quit)
[ -n "$pc_file" ] || fail "no pkgconfig/weft.pc installed"
libdir=$(dirname "$(dirname "$pc_file")")
for f in "$prefix/include/weft.h" "$libdir/libweft.a" "$libdir/libweft.so" "$libdir/cmake/weft/weftConfig.cmake" \
         "$libdir/cmake/weft/weftConfigVersion.cmake" "$libdir/cmake/weft/weftTargets.cmake"; do
  [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
# weft.h and its sub-headers, one per area, exactly those of include/ in the source tree.
headers=$(cd "$prefix/include" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')
expected=$(cd "$root/include" && find . -type f -name '*.h' | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')
[[ $expected == *"weft/"* ]] || fail "no include/weft/*.h in the source tree"
[ "$headers" = "$expected" ] || fail "installed headers should be $expected, are: $headers"
for f in "$root"/include/weft/*.h; do
  [ -f "$prefix/include/weft/$(basename "$f")" ] || fail "not installed: include/weft/$(basename "$f")"
done

PKG_CONFIG_PATH=$(dirname "$pc_file")
export PKG_CONFIG_PATH
version=$(pkg-config --modversion weft) || fail "pkg-config cannot read weft.pc"
header_version=$(sed -n 's/^#define WEFT_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/weft/base.h")
[ "$version" = "$header_version" ] || fail "weft.pc says version $version, weft/base.h says $header_version"
step "pkg-config finds weft $version: $(pkg-config --cflags --libs weft)"

# The flags a user's program is held to, so a warning from weft.h (or weft/*.h) would show here.
user_cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)

# shellcheck disable=SC2046  # pkg-config output is meant to be split into words
"$CC" "${user_cflags[@]}" "$here/hello.c" -o "$tmp/hello-pkgconfig-shared" $(pkg-config --cflags --libs weft) \
  || fail "building hello.c with \$(pkg-config --cflags --libs weft)"
links_shared_weft "$tmp/hello-pkgconfig-shared" || fail "pkg-config --libs weft did not give the shared library"
LD_LIBRARY_PATH=$libdir run_hello "$tmp/hello-pkgconfig-shared"

# shellcheck disable=SC2046
"$CC" "${user_cflags[@]}" "$here/hello.c" -o "$tmp/hello-pkgconfig-static" $(pkg-config --cflags weft) \
  -Wl,-Bstatic $(pkg-config --static --libs weft) -Wl,-Bdynamic \
  || fail "building hello.c with -Wl,-Bstatic \$(pkg-config --static --libs weft)"
! links_shared_weft "$tmp/hello-pkgconfig-static" || fail "the static pkg-config build loads libweft.so"
run_hello "$tmp/hello-pkgconfig-static"

step "building tests/install with find_package(weft)"
if ! { cmake -S "$here" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$CC" \
         -DCMAKE_C_FLAGS="${user_cflags[*]}" && cmake --build "$tmp/consumer"; } >"$tmp/consumer.log" 2>&1; then
  cat "$tmp/consumer.log" >&2
  fail "the CMake consumer project"
fi
! links_shared_weft "$tmp/consumer/hello" || fail "weft::weft should be the static library"
run_hello "$tmp/consumer/hello"
links_shared_weft "$tmp/consumer/hello_shared" || fail "weft::weft_shared should be the shared library"
# CMake gives the program an RPATH to the imported library: no LD_LIBRARY_PATH needed.
run_hello "$tmp/consumer/hello_shared"

step "ok (pkg-config shared and static, CMake weft::weft and weft::weft_shared)"
