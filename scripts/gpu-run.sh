#!/usr/bin/env bash
# Runs the binaries scripts/gpu-pack.sh packed on a GPU machine: the CUDA tests, then examples timed on CUDA and on the CPU.
#
# Usage (from the repository root, on the GPU machine): scripts/gpu-run.sh PACK LOGS STEP...
#
#   PACK   the folder gpu-pack.sh wrote (*.xz, MANIFEST)
#   LOGS   where each step's full output goes (one file per step)
#   STEP   `info` (driver, GPU, the CUDA wheels), `tests` (every packed test on the GPU),
#          or EXAMPLE:DEVICE:EPOCHS, e.g. lenet:cuda:4 or vgg:cpu:1
#
# The binaries load the CUDA 13 libraries from the Python environment's NVIDIA wheels
# (site-packages/nvidia/cu13/lib; override with CUDA_LIB) and the driver's libcuda.so.1,
# and read the data in ./data (SHAPESAFE_DATA). Each step's exit status is printed; the
# script goes on after a failure and exits non-zero if any step failed.
set -uo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 PACK LOGS STEP..." >&2
    exit 2
fi
pack=$1
logs=$2
shift 2
mkdir -p "$logs"
bin=$(mktemp -d)

if [[ -z ${CUDA_LIB:-} ]]; then
    CUDA_LIB=$(python3 -c 'import os, nvidia; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))') || {
        echo "$0: no NVIDIA wheels found by python3; set CUDA_LIB to CUDA 13's lib folder" >&2
        exit 1
    }
fi
export LD_LIBRARY_PATH=$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SHAPESAFE_DATA=$PWD/data

unpack() { # unpack NAME -> path of the runnable binary
    [[ -x $bin/$1 ]] || { xz -dc "$pack/$1.xz" >"$bin/$1" && chmod +x "$bin/$1"; } || return 1
    echo "$bin/$1"
}

failed=0
step() { # step NAME COMMAND...: runs it, keeps its output, reports its status and time
    local name=$1
    shift
    local start=$SECONDS
    echo "== $name: $*"
    "$@" >"$logs/$name.log" 2>&1
    local status=$?
    tail -n 15 "$logs/$name.log"
    echo "== $name: exit $status after $((SECONDS - start)) s"
    [[ $status -eq 0 ]] || failed=1
}

for s in "$@"; do
    case $s in
    info)
        # shellcheck disable=SC2016 # the inner shell expands LD_LIBRARY_PATH
        step info bash -c 'nvidia-smi; echo; python3 -m pip list 2>/dev/null | grep -i -e nvidia -e cuda-toolkit -e "^torch "; echo; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; cat '"$pack"'/MANIFEST'
        ;;
    tests)
        for archive in "$pack"/test-*.xz; do
            name=$(basename "$archive" .xz)
            exe=$(unpack "$name") || { echo "cannot unpack $archive" >&2; failed=1; continue; }
            step "$name" "$exe"
        done
        ;;
    *:*:*)
        IFS=: read -r example device epochs <<<"$s"
        exe=$(unpack "$example") || { echo "cannot unpack $example" >&2; failed=1; continue; }
        step "$example-$device" "$exe" --device "$device" --epochs "$epochs" --out "$logs/runs/$example-$device"
        ;;
    *)
        echo "$0: unknown step $s" >&2
        failed=1
        ;;
    esac
done
rm -rf "$bin"
exit $failed
