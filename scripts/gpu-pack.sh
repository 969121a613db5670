#!/usr/bin/env bash
# Builds shapesafe's CUDA examples and tests on a machine without a GPU and packs them, stripped and xz-compressed, for a GPU machine.
#
# Usage: scripts/gpu-pack.sh DIR [TEST ...]
#
# Needs a CUDA build environment first: `source <toolkit>/env.sh`, as written by
# scripts/cuda-toolkit-from-wheels.sh (or a system toolkit with CUDA_COMPUTE_CAP set).
# Builds, with `--release --features cuda`, the examples lenet, vgg and transformer and the
# named integration tests (default: every tests/*.rs but the ui-tests), strips their debug
# info and writes DIR/<name>.xz for each, plus DIR/MANIFEST with sizes and checksums.
# A GPU machine takes only what is copied to it (64 MB in this workplace), and the CUDA
# libraries are not packed: the binaries load the GPU machine's own (docs/cuda.md).
# Run them there with scripts/gpu-run.sh.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 DIR [TEST ...]" >&2
    exit 2
fi
: "${CUDA_ROOT:?no CUDA toolkit: source the env.sh that scripts/cuda-toolkit-from-wheels.sh writes}"
: "${CUDA_COMPUTE_CAP:?set CUDA_COMPUTE_CAP to the compute capability of the GPU, e.g. 90 for an H100}"
for tool in objcopy xz python3; do
    command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 1; }
done

out=$1
shift
tests=("$@")
examples=(lenet vgg transformer)
cd "$(dirname "$0")/.."
if [[ ${#tests[@]} -eq 0 ]]; then
    # The ui-tests pin CPU builds' compiler messages and are compiled out of CUDA builds.
    for file in tests/*.rs; do
        name=$(basename "$file" .rs)
        [[ $name == ui ]] || tests+=("$name")
    done
fi
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$out"

example_args=()
for e in "${examples[@]}"; do example_args+=(--example "$e"); done
cargo build --release --features cuda "${example_args[@]}"

# cargo prints each test binary's path in its JSON messages; keep those of the named tests.
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
mapfile -t test_bins < <(
    cargo test --release --features cuda --no-run --message-format=json "${test_args[@]}" |
        python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"] == ["test"]:
        print(msg["target"]["name"] + "\t" + msg["executable"])
'
)
[[ ${#test_bins[@]} -eq ${#tests[@]} ]] || {
    echo "$0: expected ${#tests[@]} test binaries, cargo reported ${#test_bins[@]}" >&2
    exit 1
}

pack() { # pack NAME BINARY
    objcopy --strip-debug "$2" "$out/$1"
    xz -T2 -6 -f "$out/$1"
}
for e in "${examples[@]}"; do pack "$e" "$target/release/examples/$e"; done
for line in "${test_bins[@]}"; do pack "test-${line%%$'\t'*}" "${line#*$'\t'}"; done

(
    cd "$out"
    echo "# shapesafe CUDA binaries, built $(date -u +%Y-%m-%dT%H:%MZ) from $(git -C "$OLDPWD" rev-parse --short HEAD) for sm_${CUDA_COMPUTE_CAP}"
    sha256sum ./*.xz
) >"$out/MANIFEST"
du -ch "$out"/*.xz | tail -1 | sed "s|total|total in $out|"
cat "$out/MANIFEST"
