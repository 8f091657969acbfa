"""Throughput of tracked's fingerprint beside md5, MLflow's dataset digest and a plain memory copy.

    python benchmarks/bench_fingerprint.py [--size-gib 1.0] [--repeat 3]

Every figure is the best of --repeat runs, in GiB/s of data fingerprinted. The memory reference
is numpy.copyto into an already-touched array; it reads and writes every byte, hashing only
reads, so a hash over an in-memory buffer can run faster than it.
Objects are built one at a time and dropped before the next, so the peak is about 2x the size.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tracked.capture.fingerprint import fingerprint

GIB = 1 << 30
READ_CHUNK = 8 << 20
# MLflow maps type() over every cell of the frame, so it runs on a smaller one.
MLFLOW_MAX_BYTES = 64 << 20


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gibps(nbytes: int, seconds: float) -> float:
    return nbytes / GIB / seconds


def md5_buffers(buffers: list[np.ndarray]) -> str:
    h = hashlib.md5()
    for buf in buffers:
        h.update(memoryview(buf.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def md5_file(path: Path) -> str:
    h, buf = hashlib.md5(), memoryview(bytearray(READ_CHUNK))
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(buf[:n])
    return h.hexdigest()


def read_file(path: Path) -> int:
    total, buf = 0, memoryview(bytearray(READ_CHUNK))
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total


def evict(path: Path) -> None:
    """Drop this one file from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold(fn: Callable[[Path], object], path: Path) -> Callable[[], object]:
    def run() -> object:
        evict(path)
        return fn(path)

    return run


def frame_of(nbytes: int, columns: int, seed: int) -> pd.DataFrame:
    rows = nbytes // 8 // columns
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"c{i}": rng.random(rows) for i in range(columns)})


def row(label: str, tracked: float, md5: float, copyto: float) -> None:
    ratios = f"{tracked / md5:>11.1f}x {tracked / copyto:>13.2f}x"
    print(f"{label:<30} {tracked:>8.2f} {md5:>8.2f} {ratios}")


# Each bench_* builds its object, measures, and returns: the object is freed on return.


def bench_copyto(size: int, repeat: int) -> float:
    a = np.random.default_rng(0).random(size // 8)
    dst = np.ones_like(a)  # touch every page first: we time copying, not page faults
    return gibps(a.nbytes, best_seconds(lambda: np.copyto(dst, a), repeat))


def bench_array(size: int, repeat: int) -> tuple[float, float]:
    a = np.random.default_rng(0).random(size // 8)
    tracked = gibps(a.nbytes, best_seconds(lambda: fingerprint(a), repeat))
    md5 = gibps(a.nbytes, best_seconds(lambda: md5_buffers([a]), repeat))
    return tracked, md5


def bench_frame(size: int, repeat: int) -> tuple[float, float]:
    df = frame_of(size, 20, seed=1)
    nbytes = int(df.memory_usage(index=False).sum())
    columns = [df.iloc[:, i].to_numpy() for i in range(df.shape[1])]
    tracked = gibps(nbytes, best_seconds(lambda: fingerprint(df), repeat))
    md5 = gibps(nbytes, best_seconds(lambda: md5_buffers(columns), repeat))
    return tracked, md5


def bench_file(size: int, repeat: int, where: str | None) -> dict[str, float]:
    """Warm figures (file in the page cache) and, where posix_fadvise exists, cold ones."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        path = Path(tmp, "data.bin")
        block = np.random.default_rng(2).integers(0, 256, 64 << 20, dtype=np.uint8)
        with open(path, "wb") as f:
            for start in range(0, size, block.nbytes):
                f.write(memoryview(block)[: min(block.nbytes, size - start)])
        del block
        figures = {
            "read": gibps(size, best_seconds(lambda: read_file(path), repeat)),
            "tracked": gibps(size, best_seconds(lambda: fingerprint(path), repeat)),
            "md5": gibps(size, best_seconds(lambda: md5_file(path), repeat)),
        }
        if hasattr(os, "posix_fadvise"):
            figures["cold read"] = gibps(size, best_seconds(cold(read_file, path), repeat))
            figures["cold tracked"] = gibps(size, best_seconds(cold(fingerprint, path), repeat))
    return figures


def bench_mlflow(size: int, repeat: int) -> tuple[int, int, float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow.data

        df = frame_of(min(size, MLFLOW_MAX_BYTES), 20, seed=3)
        nbytes = int(df.memory_usage(index=False).sum())
        mlflow_speed = gibps(
            nbytes, best_seconds(lambda: mlflow.data.from_pandas(df).digest, repeat)
        )
    tracked = gibps(nbytes, best_seconds(lambda: fingerprint(df), repeat))
    return nbytes, len(df), mlflow_speed, tracked


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="size of each object")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--dir", default=None, help="where to write the temporary file")
    args = parser.parse_args()
    size, repeat = int(args.size_gib * GIB) // 8 * 8, args.repeat

    print(f"tracked.fingerprint, {size / GIB:.2f} GiB per object, best of {repeat}, in GiB/s")
    copyto = bench_copyto(size, repeat)
    gc.collect()
    print(f"memory reference: numpy.copyto {copyto:.2f} GiB/s")
    print(f"{'object':<30} {'tracked':>8} {'md5':>8} {'tracked/md5':>12} {'tracked/copyto':>14}")
    row("float64 array", *bench_array(size, repeat), copyto)
    gc.collect()
    row("DataFrame, 20 float64 columns", *bench_frame(size, repeat), copyto)
    gc.collect()
    file = bench_file(size, repeat, args.dir)
    row("file (in page cache)", file["tracked"], file["md5"], copyto)
    print(f"file read alone (readinto, {READ_CHUNK >> 20} MiB buffer, cached): {file['read']:.2f}")
    if "cold read" in file:
        print(
            f"file from disk (its page cache dropped): read {file['cold read']:.2f}, "
            f"tracked {file['cold tracked']:.2f} ({file['cold tracked'] / file['cold read']:.2f}x)"
        )
    gc.collect()
    nbytes, rows, mlflow_speed, tracked = bench_mlflow(size, repeat)
    print(
        f"mlflow.data.from_pandas(df).digest on a {nbytes / (1 << 20):.0f} MiB frame "
        f"({rows:,} rows x 20 float64): {mlflow_speed:.3f}; tracked on the same frame: "
        f"{tracked:.2f} ({tracked / mlflow_speed:.0f}x). MLflow hashes only the first 10,000 rows."
    )


if __name__ == "__main__":
    main()
