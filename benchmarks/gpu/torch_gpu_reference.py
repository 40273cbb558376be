"""PyTorch timings of the workloads in bench_gpu_ops.cu (same names, shapes and dtypes), each the
median of CUDA-event-timed calls after a warm-up, on random inputs. Prints {name: seconds} as JSON.
PyTorch's float32 matmul stays true float32 (TF32 off), as ours does."""
import json
import sys

import torch


def median_seconds(fn, warmup=10, reps=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    if not torch.cuda.is_available():
        print("{}")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    dev, bf = "cuda", torch.bfloat16
    r = lambda *s, dtype=bf: torch.randn(*s, device=dev, dtype=dtype)
    x, w, b = r(8192, 4096), r(4096, 4096), r(4096)
    a32, b32 = r(2048, 2048, dtype=torch.float32), r(2048, 2048, dtype=torch.float32)
    qa, qb = r(64, 1024, 128), r(64, 128, 1024)
    nw, nb = r(4096), r(4096)
    g = r(1 << 26)
    work = {
        "gemm_bf16_8192x4096x4096": lambda: torch.nn.functional.linear(x, w, b),
        "gemm_f32_2048x2048x2048": lambda: a32 @ b32,
        "bmm_bf16_64x1024x128x1024": lambda: torch.bmm(qa, qb),
        "layer_norm_bf16_8192x4096": lambda: torch.nn.functional.layer_norm(x, (4096,), nw, nb),
        "rms_norm_bf16_8192x4096": lambda: torch.nn.functional.rms_norm(x, (4096,), nw, 1e-6),
        "softmax_bf16_8192x4096": lambda: torch.softmax(x, -1),
        "gelu_bf16_64M": lambda: torch.nn.functional.gelu(g),
    }
    print(json.dumps({name: median_seconds(fn) for name, fn in work.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
