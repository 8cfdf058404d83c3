"""Benchmark: the expiry scan (sidecar/notify/expiry.py) over many tokens.

    .venv/bin/python bench/notify_scan.py [--tokens 100000]

Starts a private redis-server on a free loopback port, seeds the tokens
straight into Redis in the store's own format (bench/seed.py), their
expiries spread evenly over the next 180 days, then times two passes with
thresholds ``[30, 7, 1]``: the first queues a notice for every token inside
30 days (a sixth of them, each in its own transaction), the second is the
steady state of every later pass (markers set, nothing due). Reported for
each: wall time, this process's CPU time, and Redis's own time in the scan
script (INFO commandstats), which is what every other client waits behind.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import seed
from sidecar import clock, tokenformat
from sidecar.notify import expiry
from sidecar.ops import embedded
from sidecar.store import keys
from tests.kits.redis import free_port

THRESHOLDS = (30, 7, 1)


def seed_expiring(client: redis.Redis, count: int) -> None:
    """``count`` tokens expiring evenly over the next 180 days."""
    seed.ensure_user(client)
    rng = random.Random(1)
    template = seed._template({"bench": "full"})
    now = clock.now()
    for start in range(0, count, seed.BATCH):
        pipe = client.pipeline(transaction=False)
        scores = {}
        for i in range(start, min(start + seed.BATCH, count)):
            cid = seed._random_id(rng, tokenformat.CLIENT_ID_LENGTH)
            expires = now + timedelta(days=180 * i / count, minutes=5)
            fields = dict(template, client_id=cid, expires_at=clock.to_rfc3339(expires))
            pipe.hset(keys.token(cid), mapping=fields)  # type: ignore[arg-type]
            scores[cid] = int(now.timestamp() * 1000) - i
        pipe.zadd(keys.TOKENS, scores)
        pipe.execute()


def script_usec(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_eval", "cmdstat_evalsha"))


async def timed_pass(url: str, sync: redis.Redis) -> tuple[int, float, float, float]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    before_usec, wall, cpu = script_usec(sync), time.perf_counter(), time.process_time()
    queued = await expiry.scan(client, THRESHOLDS, clock.now())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.aclose()
    return queued, wall, cpu, (script_usec(sync) - before_usec) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [embedded.find_binary(None), "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.3)
            url = f"redis://127.0.0.1:{port}/0"
            sync = redis.Redis.from_url(url)
            seed_expiring(sync, args.tokens)
            print(f"{args.tokens} tokens, thresholds {list(THRESHOLDS)}")
            for name in ("first pass", "steady pass"):
                queued, wall, cpu, lua = asyncio.run(timed_pass(url, sync))
                print(
                    f"{name}: {queued} notices queued, wall {wall:.2f} s, "
                    f"python cpu {cpu:.2f} s, redis script time {lua:.3f} s"
                )
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
