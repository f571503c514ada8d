#!/usr/bin/env bash
# Runs the CUDA probe on a machine with an NVIDIA GPU and PyTorch (for its CUDA libtorch) but no .NET:
#   bash tools/cuda-probe/run.sh CARRY_DIR
# CARRY_DIR holds dotnet-runtime.tar.xz (a .NET 10 runtime: dotnet, host/, shared/Microsoft.NETCore.App/),
# probe/ (`dotnet publish tools/cuda-probe -c Release` with LibTorch's own .so files removed, so that PyTorch's
# are the ones loaded) and undefined.txt (`nm -D --undefined-only probe/libLibTorchSharp.so`, unversioned names).
set -u
carry=$1
torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'

echo "== symbols libLibTorchSharp.so (TorchSharp 0.107, LibTorch 2.10) needs that this PyTorch's libraries lack"
python3 - "$torch_lib" "$carry/undefined.txt" <<'PY'
import ctypes, os, sys
lib, names = sys.argv[1], open(sys.argv[2]).read().split()
for so in ("libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"):
    ctypes.CDLL(os.path.join(lib, so), mode=ctypes.RTLD_GLOBAL)
everything = ctypes.CDLL(None)
missing = [n for n in names if not hasattr(everything, n)]
print(f"{len(missing)} of {len(names)} unversioned undefined symbols missing")
for n in missing[:40]:
    print("  ", n)
PY

echo "== TorchSharp on CUDA through GenRecal.NET's library"
mkdir -p /tmp/dotnet && tar -C /tmp/dotnet -xJf "$carry/dotnet-runtime.tar.xz"
LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}" DOTNET_ROOT=/tmp/dotnet timeout 240 /tmp/dotnet/dotnet "$carry/probe/CudaProbe.dll"
echo "probe exit code $?"

echo "== the same 124M training step in PyTorch (bench/pytorch/decoder.py), batch 8 x 1024"
for dtype in fp32 bf16; do
  timeout 120 python3 bench/pytorch/decoder.py --preset 124m --batch 8 --seq 1024 --device cuda --dtype $dtype \
    --warmup 3 --steps 10 --skip-forward
done
