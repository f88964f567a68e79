"""A small OIP V2 gRPC load generator (ghz is not packaged here), for bench/serving.py.

``concurrency`` coroutines each send the same ``ModelInfer`` request, one after the other, for a warm-up and
then for ``seconds``; the request goes as the bytes given (serialized once, beforehand) and the answer is not
decoded, so the client does the same small work for every server. Calls are spread over up to 8 channels
(HTTP/2 connections). Prints one JSON line with the shape of wrk's summary in bench/serving.py::

    python bench/grpc_load.py HOST:PORT CONCURRENCY SECONDS WARMUP REQUEST_FILE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc  # type: ignore[import-untyped]

METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def load(target: str, body: bytes, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    options = [("grpc.max_receive_message_length", -1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(min(concurrency, 8))]
    calls = [ch.unary_unary(METHOD) for ch in channels]  # no serializers: bytes in, bytes out
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + warmup
    end = start + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        call = calls[i % len(calls)]
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            try:
                await call(body, timeout=10)
            except grpc.aio.AioRpcError:
                if t0 >= start:
                    errors += 1
                continue
            if t0 >= start:  # sent inside the measured window
                latencies.append(time.perf_counter() - t0)

    for ch in channels:
        await ch.channel_ready()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    duration = time.perf_counter() - start
    for ch in channels:
        await ch.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else 0.0

    return {"requests": len(latencies), "duration_us": int(duration * 1e6), "errors": errors,
            "p50_us": int(pct(50) * 1e6), "p99_us": int(pct(99) * 1e6)}


def main() -> None:
    target, concurrency, seconds, warmup, request_file = sys.argv[1:6]
    stats = asyncio.run(load(target, Path(request_file).read_bytes(), int(concurrency), float(seconds),
                             float(warmup)))
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
