#!/usr/bin/env bash
# Builds here, for sm_90 (H100, H200), what bench/gpu/run.sh runs on a GPU machine, and gathers it
# in build/gpu-device, the folder a device call carries: the CUDA tests, the C API test and the two
# CUDA benchmarks, stripped, beside the shared libraries they need from outside the C and C++
# runtimes and CUDA (fmt: a CUDA machine need not have it), and BUILD_INFO (commit, date, nvcc).
# The device machine cannot build it itself: it has CUDA, CMake and ninja but not Eigen, fmt or
# Catch2. Usage: bench/gpu/build.sh
#   BUILD_DIR (default build/gpu), CUDA_ARCH (default 90), JOBS (default 2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu}"
device_dir="$root/build/gpu-device"
export PATH="/usr/local/cuda/bin:$PATH"
targets=(esamp_cuda_tests esamp_capi_test esamp_bench_kernels esamp_bench_overhead_gpu)

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DESAMP_CUDA=ON -DESAMP_LLAMA_CPP=OFF \
  -DESAMP_BUILD_EXAMPLES=OFF -DESAMP_BUILD_TESTS=ON -DESAMP_BUILD_BENCH=ON >/dev/null
nice cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}"

rm -rf "$device_dir"
mkdir -p "$device_dir/bin" "$device_dir/lib"
binaries=()
for t in "${targets[@]}"; do
  binary="$(find "$build" -name "$t" -type f -perm -u+x | head -n 1)"
  cp "$binary" "$device_dir/bin/"
  binaries+=("$device_dir/bin/$t")
done
strip "${binaries[@]}"
ldd "${binaries[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*|libcudart|libcublas|libcublasLt)\.so' |
  xargs -r cp -L -t "$device_dir/lib"
{
  echo "commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) for sm_${CUDA_ARCH:-90}, $(nvcc --version | tail -n 1)"
} >"$device_dir/BUILD_INFO"
cat "$device_dir/BUILD_INFO"
ls -l "$device_dir/bin" "$device_dir/lib"
echo "to carry: build/gpu-device, $(du -sh "$device_dir" | cut -f1) (the device call's limit is 64 MiB with the working tree)"
