"""One benchmark client: threads calling the ch05 handler, as ``benchmarks/transfer.py`` asks.

Run by ``transfer.py`` as a process of its own, with the Python of the checkout under test
(the current one, or another one given with ``--baseline-code``): it imports only that
checkout's ``bank.handlers.ch05`` and the standard library, so the same client measures
both. The database comes from the environment (``DATABASE_URL``, ``BANK_SCHEMA``, ...).

Protocol on stdin/stdout: each thread connects and makes one transfer (not measured), the
client prints ``ready``, waits for a line on stdin, runs for ``--seconds``, and prints one
JSON object: ``transfers``, ``retried`` (transfers that took more than one attempt) and
``cpu_s`` (this process's CPU time over the run, all threads).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--transfers", type=int, default=0,
                        help="instead of --seconds: this many transfers per thread")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from bank.handlers.ch05 import handler

    counts, retried = [0] * args.threads, [0] * args.threads
    ready = threading.Barrier(args.threads + 1)
    go = threading.Event()
    stop = threading.Event()

    def transfer(rng: random.Random) -> dict:
        payer = rng.randint(1, args.accounts)
        payee = 1 + (payer + rng.randint(0, args.accounts - 2)) % args.accounts
        cents = rng.randint(1, 1000)
        return handler({"payer_id": payer, "payee_id": payee,
                        "amount": f"{cents // 100}.{cents % 100:02d}"})

    def worker(n: int) -> None:
        rng = random.Random(args.seed * 1000 + n)
        transfer(rng)  # connected and warm before the clock starts
        ready.wait()
        go.wait()
        while not stop.is_set() and (not args.transfers or counts[n] < args.transfers):
            response = transfer(rng)
            counts[n] += 1
            retried[n] += response["attempts"] > 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
    for t in threads:
        t.start()
    ready.wait()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    go.set()
    if not args.transfers:
        time.sleep(args.seconds)
        stop.set()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu
    print(json.dumps({"transfers": sum(counts), "retried": sum(retried), "cpu_s": cpu}),
          flush=True)


if __name__ == "__main__":
    main()
