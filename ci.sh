#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# checks formatting and lints, runs the tests on x86_64 (under both I/O
# backends) and on aarch64 under qemu-user, and runs the examples that must
# complete. Usage: ./ci.sh
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n=== %s\n' "$*"; }

step "toolchain and cross tools"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
    || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "tests, x86_64, default backend"
# The default: io_uring where the kernel allows it, whatever the caller set.
env -u GEVENT_BACKEND cargo test -p gevent
step "tests, x86_64, GEVENT_BACKEND=epoll"
GEVENT_BACKEND=epoll cargo test -p gevent

step "tests, aarch64 under qemu-user"
# qemu is ~10x slower: fewer proptest cases there, same properties; and no
# real-time (millisecond) deadlines in the sync programs, which emulated work
# can outlast.
env -u GEVENT_BACKEND PROPTEST_CASES="${AARCH64_PROPTEST_CASES:-200}" GEVENT_PROP_NO_REAL_TIME=1 \
    cargo test -p gevent --target aarch64-unknown-linux-gnu

step "examples that must run to completion"
cargo build --release --examples -p gevent
"${CARGO_TARGET_DIR:-target}/release/examples/million" 200000
cargo bench --workspace --no-run

echo
echo "ci.sh: all checks passed"
