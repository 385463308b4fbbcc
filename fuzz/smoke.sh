#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 30) when a nightly toolchain is available;
# installs cargo-fuzz from crates.io if missing. Skips (exit 0) without nightly.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
if ! rustup toolchain list 2>/dev/null | grep -q nightly; then
  echo "fuzz smoke: no nightly toolchain, skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
for target in $(cargo +nightly fuzz list); do
  echo "fuzz smoke: $target for ${secs}s"
  # Work on a copy so the stored corpus only changes when someone commits new seeds on purpose.
  work=$(mktemp -d)
  if [ -d "corpus/$target" ]; then cp -r "corpus/$target/." "$work/"; fi
  cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$secs" -rss_limit_mb=2048
  rm -rf "$work"
done
