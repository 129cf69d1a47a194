#!/usr/bin/env bash
# Builds a libFuzzer target with clang (the library's sources compiled into it, with
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs it for a bounded time
# (ctest fuzz_stream, fuzz_tls). The project's compiler may be gcc, which has no
# libFuzzer, so the target is built here, its objects in parallel, into the build
# tree; the targets share the library's objects (OUT_DIR/obj, one build at a time).
#
#   run_fuzz.sh TARGET_SOURCE OUT_DIR SECONDS SOURCE_ROOT DEFINES -- LIBRARY_SOURCES...
#
# Exits non-zero when the fuzzer finds a failing input (it is saved in OUT_DIR, and
# printed in base64 by libFuzzer), an input runs past 20 s (a hang), or the build
# fails. Longer runs by hand:
#   OUT_DIR/fuzz_stream -max_total_time=600 OUT_DIR/corpus-fuzz_stream
set -euo pipefail
target_source=$1 out=$2 seconds=$3 root=$4 defines=$5
shift 5
[ "$1" = -- ] && shift
clang=$(command -v clang-14 || command -v clang || true)
if [ -z "$clang" ]; then
  echo "run_fuzz: clang is not installed (make test installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi
name=$(basename "$target_source" .c)
mkdir -p "$out/obj" "$out/corpus-$name"
# Undefined behaviour stops the run, as a crash does (it is reported and goes on otherwise).
flags=(-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -I"$root/include" -I"$root/src")
for d in $defines; do flags+=("-D$d"); done
objects=()
for src in "$@"; do
  objects+=("$out/obj/$(echo "$src" | tr '/' '_').o")
done
# One target compiles the shared objects at a time (ctest runs the targets side by side).
exec 9>"$out/obj/.lock"
flock 9
# Compile what changed, two at a time. A header newer than the last build (every
# source includes several), or other flags, make everything compile again.
stamp="$out/obj/.built"
newest_header=$(find "$root/include" "$root/src" -name '*.h' -newer "$stamp" -print -quit 2>/dev/null || true)
if [ ! -f "$stamp" ] || [ -n "$newest_header" ] || [ "$(cat "$out/obj/.flags" 2>/dev/null)" != "${flags[*]}" ]; then
  rm -f "$out/obj"/*.o
  echo "${flags[*]}" >"$out/obj/.flags"
fi
running=0
for src in "$@"; do
  obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  if [ -f "$obj" ] && [ ! "$src" -nt "$obj" ]; then continue; fi
  "$clang" "${flags[@]}" -c "$src" -o "$obj" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then
    wait -n
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n
  running=$((running - 1))
done
"$clang" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$root/include" "$target_source" "${objects[@]}" -lpthread \
  -lssl -lcrypto -o "$out/$name"
touch "$stamp"
flock -u 9
exec 9>&-
echo "run_fuzz: running $name for $seconds s"
# Each input runs a whole weft loop, which closes what the input opened.
exec "$out/$name" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$out/" "$out/corpus-$name"
