#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing.
#
#   scripts/deps.sh GROUP|PACKAGE...     GROUP: build, demo or test (see below)
#
# Missing packages are found with dpkg-query. As root (or through sudo when it exists)
# they are installed with one `apt-get update` and one `apt-get install -y
# --no-install-recommends`; otherwise the script stops and names them.
# WEFT_SKIP_DEPS=1 skips the check (for machines that are not Debian-like, where you
# install the tools yourself).
set -euo pipefail

# libssl-dev (OpenSSL) is weft's TLS; libunwind-dev and libdw-dev (elfutils) its debug layer's stack
# traces and their file:line. libcurl4-openssl-dev builds examples/net/fetch (libcurl's multi interface on weft's
# descriptor watchers) and libhttp-parser-dev examples/net/http_server; without one, that
# example is left out of the build.
build_packages=(cmake gcc make pkg-config libc6-dev libssl-dev libunwind-dev libdw-dev libcurl4-openssl-dev libhttp-parser-dev)
demo_packages=("${build_packages[@]}")
# Criterion runs the tests; the AArch64 cross compiler, its libc and qemu-user run them
# for the second architecture; python3 runs helper scripts; gdb and valgrind are used by
# the debugging tests; clang-14 and its runtime build the libFuzzer targets; curl, wrk and
# nc are the real peers of the network showcases' tests; openssl makes the TLS tests'
# certificates and is their s_server / s_client peer.
test_packages=("${build_packages[@]}" libcriterion-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user python3 gdb valgrind clang-14 libclang-rt-14-dev curl wrk netcat-openbsd openssl)

if [ $# -eq 0 ]; then
  echo "usage: $0 build|demo|test|PACKAGE..." >&2
  exit 2
fi

wanted=()
for arg in "$@"; do
  case $arg in
    build) wanted+=("${build_packages[@]}") ;;
    demo) wanted+=("${demo_packages[@]}") ;;
    test) wanted+=("${test_packages[@]}") ;;
    *) wanted+=("$arg") ;;
  esac
done

if [ "${WEFT_SKIP_DEPS:-0}" = 1 ]; then
  exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: no dpkg-query here (not Debian?); make sure these are installed: ${wanted[*]}" >&2
  echo "deps: carrying on; set WEFT_SKIP_DEPS=1 to silence this." >&2
  exit 0
fi

missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
  case $status in
    ii*) ;;
    *) case " ${missing[*]} " in *" $package "*) ;; *) missing+=("$package") ;; esac ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root:  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  # Without a terminal sudo cannot ask for a password: fail at once instead of hanging.
  if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg run may hold the lock for a while (unattended upgrades, a
# background install): wait for it rather than fail.
apt_options=(-o DPkg::Lock::Timeout=600)
if ! "${as_root[@]}" apt-get "${apt_options[@]}" update -q; then
  echo "deps: apt-get update failed; trying the install with the current package lists" >&2
fi
if ! "${as_root[@]}" apt-get "${apt_options[@]}" install -y -q --no-install-recommends "${missing[@]}"; then
  echo "deps: could not install: ${missing[*]}" >&2
  echo "deps: install them yourself (apt-get install -y ${missing[*]}) and run make again" >&2
  exit 1
fi
