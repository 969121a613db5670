#!/usr/bin/env bash
# Installs what the `mpi` feature needs from Debian, only where it is missing: an MPI library
# with its headers and launcher (Open MPI) and libclang, which rsmpi's bindgen loads.
set -euo pipefail
missing=()
command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
# libclang itself (libclang.so, libclang-14.so.1), not libclang-cpp, which does not serve bindgen.
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null \
  || missing+=(libclang-dev)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-mpi: MPI and libclang are already installed"
  exit 0
fi
echo "install-mpi: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || echo "install-mpi: apt-get update failed; trying the package lists we have"
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
