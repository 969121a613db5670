#!/usr/bin/env bash
# Builds a CUDA toolkit for `cargo build --features cuda` out of NVIDIA's PyPI wheels, on a machine without a GPU or a CUDA install.
#
# Usage: scripts/cuda-toolkit-from-wheels.sh DIR
#
# What it does, all inside DIR (nothing outside it is touched):
#   1. `pip install --target DIR/site-packages` the pinned CUDA wheels: nvcc (with its
#      crt headers, nvvm/cicc and CCCL), the headers (cuda.h comes with nvidia-cuda-runtime),
#      cuBLAS, cuRAND and NVRTC. The pins are those of the `cuda-toolkit` meta package
#      that torch 2.11.0 on PyPI (a CUDA 13.0 build) pins, so the libraries linked here
#      should be the ones a torch 2.11 venv on the GPU machine already has.
#   2. Adds unversioned names (libcublas.so -> libcublas.so.13, ...): the wheels ship only
#      the versioned ones, and `-lcublas` needs `libcublas.so`.
#   3. Builds a link-time stub of the driver library, lib64/stubs/libcuda.so (SONAME
#      libcuda.so.1): the driver is not in any wheel. Every function declared in the
#      wheel's cuda.h is defined there and returns CUDA_ERROR_STUB_LIBRARY (34), as
#      NVIDIA's own toolkit stub does. It only satisfies `-lcuda` at link time; the binary
#      records `libcuda.so.1`, which the loader finds in the real driver at run time. The
#      file is named libcuda.so (no .so.1), so the loader never picks the stub.
#   4. Writes a build-time `nvidia-smi` stand-in, DIR/shim/nvidia-smi: dfdx 0.13's build
#      script runs `nvidia-smi --query-gpu=compute_cap --format=csv` unconditionally (and
#      panics if it is missing) before it reads CUDA_COMPUTE_CAP. The stand-in answers only
#      that query, with CUDA_COMPUTE_CAP, and fails on anything else. env.sh puts it last
#      on PATH, so a real nvidia-smi wins where there is one.
#   5. Writes DIR/env.sh with the exports for the build (CUDA_ROOT, CUDA_PATH, PATH,
#      CUDA_COMPUTE_CAP) and prints it.
#
# Then: `source DIR/env.sh && cargo build --release --features cuda --example lenet`.
# See docs/cuda.md, "Building on a machine without a toolkit".
#
# Environment:
#   CUDA_COMPUTE_CAP   the GPU's compute capability written into env.sh (default 90, H100)
#   PYTHON             the Python that runs pip (default python3)
set -euo pipefail

# The `cuda-toolkit` meta package release; torch 2.11.0 on PyPI pins cuda-toolkit==13.0.2. Its
# extras pin each component wheel (nvcc 13.0.88, cudart 13.0.96, cuBLAS 13.1.0.3,
# cuRAND 10.4.0.35, NVRTC 13.0.88). crt and nvvm must be named too: nvidia-cuda-nvcc
# depends on them unpinned, and pip would otherwise take the newest (it installed cicc and
# crt 13.5.37 next to nvcc 13.0.88: a pair NVIDIA never shipped, whose PTX could also be
# newer than the GPU machine's CUDA 13.0 driver accepts). cccl brings <nv/target>,
# which CUDA 13's cuda_fp16.h includes (dfdx's kernels include cuda_fp16.h).
CUDA_TOOLKIT_VERSION=13.0.2
CUDA_WHEEL_EXTRAS=nvcc,crt,nvvm,cccl,cudart,cublas,curand,nvrtc
CUDA_MAJOR=13

die() { echo "cuda-toolkit-from-wheels: error: $*" >&2; exit 1; }
say() { echo "cuda-toolkit-from-wheels: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 DIR   (DIR: where to put the toolkit; created if missing)"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
PYTHON=${PYTHON:-python3}
COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

for tool in "$PYTHON" gcc; do
    command -v "$tool" >/dev/null || die "\`$tool\` not found; it is needed to install the wheels and build the libcuda stub"
done
[[ $(uname -m) == x86_64 ]] || die "the pinned wheels are for x86_64 Linux, this is $(uname -m)"

SITE=$DIR/site-packages
ROOT=$SITE/nvidia/cu$CUDA_MAJOR

# 1. The wheels.
SPEC="cuda-toolkit[$CUDA_WHEEL_EXTRAS]==$CUDA_TOOLKIT_VERSION"
if [[ -f $SITE/.installed && $(cat "$SITE/.installed") == "$SPEC" ]]; then
    say "$SPEC already installed in $SITE"
else
    say "installing $SPEC into $SITE (about 1.2 GB unpacked)"
    rm -rf "$SITE"
    "$PYTHON" -m pip install --disable-pip-version-check --no-cache-dir --target "$SITE" "$SPEC" \
        || die "pip could not install the CUDA wheels"
    echo "$SPEC" > "$SITE/.installed"
fi
[[ -x $ROOT/bin/nvcc ]] || die "no nvcc at $ROOT/bin/nvcc after the install"
[[ -f $ROOT/include/cuda.h ]] || die "no cuda.h at $ROOT/include/cuda.h after the install"
[[ -x $ROOT/nvvm/bin/cicc ]] || die "no cicc at $ROOT/nvvm/bin/cicc (nvidia-nvvm) after the install"

# 2. Unversioned names for the linker.
for lib in cublas cublasLt curand nvrtc cudart; do
    versioned=
    for path in "$ROOT/lib/lib$lib.so."*; do
        name=${path##*/}
        if [[ $name =~ ^lib$lib\.so\.[0-9]+$ ]]; then versioned=$name; break; fi
    done
    [[ -n $versioned ]] || die "no lib$lib.so.N in $ROOT/lib"
    ln -sfn "$versioned" "$ROOT/lib/lib$lib.so"
    say "lib/lib$lib.so -> $versioned"
done

# 3. The libcuda link stub. The functions come from the wheel's own cuda.h, preprocessed
# with __CUDA_API_VERSION_INTERNAL so that both the current (`cuMemAlloc_v2`) and the
# legacy (`cuMemAlloc`) entry points are declared; the profiler pair lives in
# cudaProfiler.h, which is not in these wheels. Their signatures do not matter: a stub
# function is never called.
STUB_DIR=$ROOT/lib64/stubs
mkdir -p "$STUB_DIR" "$DIR/build"
STUB_SRC=$DIR/build/libcuda-stub.c
{
    echo "/* Link-time stub of libcuda.so.1, generated by shapesafe's scripts/cuda-toolkit-from-wheels.sh"
    echo "   from $ROOT/include/cuda.h. Never loaded at run time. */"
    {
        gcc -E -P -x c -D__CUDA_API_VERSION_INTERNAL -I"$ROOT/include" "$ROOT/include/cuda.h" \
            | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t'
        printf '%s\n' cuProfilerInitialize cuProfilerStart cuProfilerStop
    } | sort -u | while read -r fn; do
        echo "int $fn(void) { return 34; /* CUDA_ERROR_STUB_LIBRARY */ }"
    done
} > "$STUB_SRC"
n_fns=$(grep -c '^int ' "$STUB_SRC")
(( n_fns > 300 )) || die "only $n_fns functions found in cuda.h; the header's layout changed?"
gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB_DIR/libcuda.so" "$STUB_SRC"
say "built $STUB_DIR/libcuda.so (SONAME libcuda.so.1, $n_fns functions; a link-time stub only)"

# 4. The nvidia-smi stand-in for dfdx's build script (see the header).
mkdir -p "$DIR/shim"
cat > "$DIR/shim/nvidia-smi" <<'SHIM'
#!/bin/sh
# Build-time stand-in for nvidia-smi, written by shapesafe's scripts/cuda-toolkit-from-wheels.sh:
# answers dfdx 0.13's build-script query `--query-gpu=compute_cap --format=csv` with
# $CUDA_COMPUTE_CAP (90 -> 9.0). It knows nothing about any GPU.
cap=${CUDA_COMPUTE_CAP#sm_}
if [ "$*" = "--query-gpu=compute_cap --format=csv" ] && [ -n "$cap" ]; then
    echo compute_cap
    echo "${cap%?}.${cap#"${cap%?}"}"
    exit 0
fi
echo "nvidia-smi: this is the build-time stand-in from cuda-toolkit-from-wheels.sh, not a GPU;" \
    "it answers only --query-gpu=compute_cap --format=csv, with CUDA_COMPUTE_CAP set" >&2
exit 9
SHIM
chmod +x "$DIR/shim/nvidia-smi"
say "wrote $DIR/shim/nvidia-smi (a build-time stand-in: it reports CUDA_COMPUTE_CAP, nothing else)"

# 5. The environment for cargo.
cat > "$DIR/env.sh" <<EOF
# Source this before \`cargo build --features cuda\`: CUDA $CUDA_MAJOR from PyPI wheels
# (cuda-toolkit==$CUDA_TOOLKIT_VERSION), written by scripts/cuda-toolkit-from-wheels.sh.
export CUDA_ROOT='$ROOT'
export CUDA_PATH='$ROOT'
export PATH='$ROOT/bin':"\$PATH":'$DIR/shim'
export CUDA_COMPUTE_CAP=$COMPUTE_CAP
EOF
say "wrote $DIR/env.sh; nvcc: $("$ROOT/bin/nvcc" --version | tail -n 2 | head -n 1)"
say "run \`source $DIR/env.sh\`, or these exports:"
cat "$DIR/env.sh"
