"""Worker threads that keep a load level going: N requests in flight, or R requests a second.

Every request takes a number from one shared ``Budget``, so the whole run is bounded in count;
the runner bounds it in time and sets ``stop``. Workers append ``Record`` tuples to one list
(``list.append`` is atomic in CPython, so no lock sits on the hot path).
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from .transport import Record

ERROR_BACKOFF_S = 0.02  # a dead server must not turn the workers into a busy loop
JOIN_TIMEOUT_S = 60.0


class Budget:
    """Request numbers 0..limit-1, handed out once each, from any thread."""

    def __init__(self, limit: int):
        self.limit = limit
        self.exhausted = False
        self._counter = itertools.count()  # next() on it is atomic under the GIL

    def take(self) -> int | None:
        seq = next(self._counter)
        if seq < self.limit:
            return seq
        self.exhausted = True
        return None


class Schedule:
    """Due times for request-rate mode: constant gaps of 1/rate, or Poisson (exponential gaps)."""

    def __init__(self, rate: float, distribution: str, seed: int, start_ns: int):
        self._lock = threading.Lock()
        self._next = start_ns
        self._gap_ns = 1e9 / rate
        self._rng = np.random.default_rng(seed) if distribution == "poisson" else None

    def take(self) -> int:
        with self._lock:
            due = self._next
            gap = self._rng.exponential(self._gap_ns) if self._rng is not None else self._gap_ns
            self._next = due + int(round(gap))
            return due


class LoadDriver:
    """Runs one load level at a time on a pool of senders (one connection each)."""

    def __init__(self, make_sender, n_payloads: int, prefix: str, budget: Budget,
                 records: list[Record]):
        self._make_sender = make_sender
        self._senders: list = []
        self.n_payloads, self.prefix = n_payloads, prefix
        self.budget, self.records = budget, records
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def senders(self, n: int) -> list:
        while len(self._senders) < n:
            self._senders.append(self._make_sender())
        return self._senders[:n]

    def start_concurrency(self, n: int) -> None:
        self._start([(self._closed_loop, (s,)) for s in self.senders(int(n))])

    def start_rate(self, rate: float, distribution: str, max_threads: int, seed: int) -> None:
        schedule = Schedule(rate, distribution, seed, time.perf_counter_ns())
        self._start([(self._open_loop, (s, schedule)) for s in self.senders(max_threads)])

    def _start(self, targets) -> None:
        self.stop()
        self.stop_event = threading.Event()
        self._threads = [threading.Thread(target=fn, args=args, daemon=True,
                                          name=f"gpuprof-load-{i}")
                         for i, (fn, args) in enumerate(targets)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Let in-flight requests finish, then return (each is bounded by the request timeout)."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        self._threads = []

    def close(self) -> None:
        self.stop()
        for sender in self._senders:
            sender.close()
        self._senders = []

    def _closed_loop(self, sender) -> None:
        while not self.stop_event.is_set():
            seq = self.budget.take()
            if seq is None:
                return
            self._one(sender, seq, 0)

    def _open_loop(self, sender, schedule: Schedule) -> None:
        while not self.stop_event.is_set():
            due = schedule.take()
            wait_s = (due - time.perf_counter_ns()) / 1e9
            if wait_s > 0 and self.stop_event.wait(wait_s):
                return
            seq = self.budget.take()
            if seq is None:
                return
            self._one(sender, seq, due)

    def _one(self, sender, seq: int, due: int) -> None:
        try:
            start, sent, recv, end, error = sender.send(f"{self.prefix}{seq}",
                                                        seq % self.n_payloads)
        except Exception as exc:  # a worker must never die silently: record it as a failure
            start = sent = recv = end = time.perf_counter_ns()
            error = f"{type(exc).__name__}: {exc}"
        self.records.append(Record(seq, due, start, sent, recv, end, error,
                                   *sender.wire_facts()))
        if error is not None:
            self.stop_event.wait(ERROR_BACKOFF_S)
