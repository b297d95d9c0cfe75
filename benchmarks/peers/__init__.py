"""Each peer's form of the workloads bench_peers times, its pinned requirements, and helpers."""
