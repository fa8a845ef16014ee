"""Throughput and memory benchmarks against PyTorch peers.

* `python -m benchmarks.cpu [--json] [--quick]`: TF CPU, the package's real train step.
* `python -m benchmarks.gpu [--smoke]`: Keras on JAX (bf16) on a CUDA machine without TF.
* `benchmarks.harness`: the timers and machine description both share; `benchmarks.peers`: the torch models.

Results: benchmarks/RESULTS.md.
"""
