"""A random walk through the handlers of one warm process, checked against a model.

Hypothesis drives a ``RuleBasedStateMachine`` that calls the real Lambda handlers (ch03,
ch04, ch05, ch06) directly, in ONE process whose module-level engine and pool are built
once for the test and never rebuilt, between steps or between examples: what a warm
Lambda container sees over many invocations. The steps interleave

- transfers on integer accounts (ch04, ch05) and UUID accounts (ch06), with or without a
  ``transfer_id``, the amount as a string or a JSON number;
- replays: the same payload under a used ``transfer_id`` (through ch04 or ch05 for an
  integer transfer) must answer the first outcome, ``"replayed": true``, and move nothing;
  another payload under a used ``transfer_id`` must be ``TransferIdReused``;
- refusals: ``InsufficientFunds``, ``AccountNotFound``, malformed events
  (``InvalidRequest``), and ch03 balance reads;
- bursts of real threads on 2-3 hot accounts (ch05/ch06 retry conflicts, so only
  ``InsufficientFunds`` may refuse one of their transfers; ch04 may also report
  ``TransactionConflict``);
- the application's backends killed (``pg_terminate_backend``), after which the next
  calls must still succeed: the service retries a connection lost before COMMIT.

A Python model keeps the balances of the machine's own accounts (4 integer, 3 UUID, made
for each example) and the ledger (transfer_id -> payer, payee, amount, payer_balance).
After every step the database is read with SQL, through a connection of the test's own
(not the application's, which the kills take down): balances equal the model's, money
is conserved, no balance is negative, and the ``transfers`` ledger holds each
acknowledged transfer exactly once, as acknowledged (and, checked at the end of each
example, nothing else on these accounts). Every answer is checked as it comes: any
exception that is not a ``BankError`` fails the test, so does a ``DatabaseError`` (or
any error not expected) for a valid request.

Why a random walk: what a request meets in a warm process depends on what ran before it
on the same pooled connection (psycopg, for one, prepares a statement on its sixth run),
which no test of a single request reaches.

So that Hypothesis can shrink a failure to the few steps that cause it, an example runs
the same way each time it is run: it starts on a fresh connection (the application's
backends are killed first), the steps from the main thread share the pool's one
connection (``warm_process``), a burst's threads use connections of their own, closed
after the burst, and a failure is raised when the example ends (``guarded``).

Local PostgreSQL only (a superuser kills the backends).
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, event, text

from bank.adapters import database
from bank.adapters.errors import TransactionConflict
from bank.domain.errors import (
    AccountNotFound,
    BankError,
    InsufficientFunds,
    InvalidRequest,
    TransferIdReused,
)
from bank.handlers import ch03, ch04, ch05, ch06
from bank.kit import local

INT_ACCOUNTS, UUID_ACCOUNTS = 4, 3
START = Decimal(100)
HANDLERS = {"ch04": ch04.handler, "ch05": ch05.handler, "ch06": ch06.handler}
#: Integer ids no account has: make_accounts and the seed use far smaller ones.
UNKNOWN_INT_IDS = st.integers(2_000_000_000, 2_000_000_099)
_next_id = itertools.count(1_500_000_000 + secrets.randbelow(10_000) * 10_000)

SETTINGS = settings(
    max_examples=200,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,  # the same walk every run: a failure reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # not explain: minutes more
    report_multiple_bugs=False,  # one failure, shrunk; not one per line that failed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


class Context:
    """A Lambda context with plenty of time left."""

    def __init__(self, seconds: float = 60):
        self.deadline = time.monotonic() + seconds
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "bank-stateful-test"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def call(handler, event) -> tuple[dict | None, BankError | None]:
    """The handler's answer, or the named error it raised. Anything else fails the test."""
    try:
        return handler(event, Context()), None
    except BankError as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - a raw error is a failure of the application
        raise AssertionError(
            f"raw {type(exc).__module__}.{type(exc).__name__} for {event!r}:\n"
            + "".join(traceback.format_exception(exc))
        ) from exc


def named(exc: BaseException | None) -> str:
    return "no error" if exc is None else f"{type(exc).__name__}: {exc}"


def money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2).quantize(Decimal("0.000001"))


def amount_field(amount: Decimal, as_number: bool) -> str | int | float:
    """The amount as the event carries it: a decimal string, or a JSON number."""
    if not as_number:
        return f"{amount.normalize():f}"
    return int(amount) if amount == amount.to_integral_value() else float(amount)


@dataclass(frozen=True)
class Entry:
    """A ledger entry, as the model knows it."""

    kind: str  # "int" (accounts, ch04/ch05) or "uuid" (accounts2, ch06)
    payer: Any
    payee: Any
    amount: Decimal
    payer_balance: Decimal

    def event(self, transfer_id: str, as_number: bool = False) -> dict:
        return {"payer_id": self.payer, "payee_id": self.payee,
                "amount": amount_field(self.amount, as_number), "transfer_id": transfer_id}


def guarded(step, counted: bool = True):
    """Run a step unless an earlier one failed; keep its failure for ``teardown``.

    With real threads, whether a step fails can vary from one run of an example to the
    next. Hypothesis needs every run of an example to draw the same steps, so a failure
    ends nothing: it is kept (the first one, with the step that met it), the rest of the
    example's steps do nothing, and ``teardown`` raises it.
    """

    @functools.wraps(step)
    def run(self, **kwargs):
        if self.failure is not None:
            return
        self.steps += counted
        try:
            step(self, **kwargs)
        except Exception as exc:  # noqa: BLE001 - raised again by teardown
            args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            exc.add_note(f"(in step {self.steps}: {step.__name__}({args}))")
            self.failure = exc

    return run


def pairs(n: int):
    """(payer index, payee index), different."""
    return st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True).map(tuple)


CENTS = st.integers(1, 6000)  # 0.01 .. 60.00 on balances that start at 100
#: The chapter of a transfer between integer accounts (between UUID accounts: ch06).
INT_CHAPTER = st.sampled_from(["ch04", "ch05"])
#: A burst: per thread, a few (payer, payee, cents, chapter) among the hot accounts (the
#: chapter of an integer account's transfer: ch06 for UUID accounts).
BURST_OP = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 2000),
                     st.sampled_from(["ch04", "ch05"]))
BURST_THREADS = 6  # at most
BURST = st.lists(st.lists(BURST_OP, min_size=2, max_size=3), min_size=4,
                 max_size=BURST_THREADS)


#: Which acknowledged transfer a replay picks: an index into the ledger, taken modulo its
#: size. (Not a Bundle: what a burst acknowledges varies from run to run, and Hypothesis
#: needs every run of an example to draw the same way.)
PICK = st.integers(0, 99)


class BankMachine(RuleBasedStateMachine):
    def __init__(self, observer: Engine, app_engine: Engine):
        super().__init__()
        self.db = observer
        self.app_engine = app_engine
        self.balance: dict[Any, Decimal] = {}
        self.ledger: dict[str, Entry] = {}
        self.order: list[str] = []  # the ledger's ids, as acknowledged
        self.steps = 0
        self.failure: Exception | None = None

    def teardown(self):
        self.nothing_else_in_the_ledger()
        if self.failure is not None:
            raise self.failure

    # --- set-up ---------------------------------------------------------------------------

    @initialize()
    @guarded
    def open_accounts(self):
        # The warm process: the handlers' engine is the one the test began with.
        assert database.get_engine() is self.app_engine, "the module-level engine was rebuilt"
        self.kill_backends()  # fresh connections in the same pool: examples replay alike
        self.ints = [next(_next_id) for _ in range(INT_ACCOUNTS)]
        with self.db.begin() as conn:
            conn.execute(text("INSERT INTO accounts (id, balance) VALUES (:id, :b)"),
                         [{"id": i, "b": START} for i in self.ints])
            self.uuids = [str(r[0]) for r in conn.execute(text(
                "INSERT INTO accounts2 (balance) SELECT :b FROM generate_series(1, :n) "
                "RETURNING id"), {"b": START, "n": UUID_ACCOUNTS})]
        self.balance = {i: START for i in self.ints} | {u: START for u in self.uuids}

    def ids(self, kind: str) -> list:
        return self.ints if kind == "int" else self.uuids

    # --- checking answers -----------------------------------------------------------------

    def expect_moved(self, handler_name, event, response, error, entry: Entry) -> None:
        assert error is None, (
            f"{handler_name} refused a valid transfer {event!r} with {named(error)}")
        assert response is not None
        assert "replayed" not in response, f"{handler_name}: a new transfer replayed: {response}"
        assert Decimal(response["payer_balance"]) == entry.payer_balance, (
            f"{handler_name}: payer_balance {response['payer_balance']}, "
            f"expected {entry.payer_balance} for {event!r}")
        if event.get("transfer_id"):
            assert response["transfer_id"] == event["transfer_id"]
        self.balance[entry.payer] -= entry.amount
        self.balance[entry.payee] += entry.amount
        self.record(response["transfer_id"], entry)

    def record(self, transfer_id: str, entry: Entry) -> None:
        self.ledger[transfer_id] = entry
        self.order.append(transfer_id)

    def picked(self, pick: int) -> str | None:
        return self.order[pick % len(self.order)] if self.order else None

    def expect_refused(self, handler_name, event, response, error, expected: type) -> None:
        assert type(error) is expected, (
            f"{handler_name}: expected {expected.__name__} for {event!r}, got "
            f"{named(error) if error is not None else response}")
        assert isinstance(error, BankError) and error.applied is False

    def transfer(self, handler_name: str, kind: str, payer: Any, payee: Any,
                 amount: Decimal, with_id: bool, as_number: bool):
        event = {"payer_id": payer, "payee_id": payee, "amount": amount_field(amount, as_number)}
        if with_id:
            event["transfer_id"] = str(uuid.uuid4())
        response, error = call(HANDLERS[handler_name], event)
        known = payer in self.balance, payee in self.balance
        if not known[0]:
            self.expect_refused(handler_name, event, response, error, AccountNotFound)
        elif self.balance[payer] < amount:  # the payer is checked before the payee
            self.expect_refused(handler_name, event, response, error, InsufficientFunds)
        elif not known[1]:
            self.expect_refused(handler_name, event, response, error, AccountNotFound)
        else:
            entry = Entry(kind, payer, payee, amount, self.balance[payer] - amount)
            self.expect_moved(handler_name, event, response, error, entry)

    # --- rules: transfers -----------------------------------------------------------------

    @rule(chapter=INT_CHAPTER, pair=pairs(INT_ACCOUNTS), cents=CENTS,
          with_id=st.booleans(), as_number=st.booleans())
    @guarded
    def transfer_int(self, chapter, pair, cents, with_id, as_number):
        payer, payee = (self.ints[i] for i in pair)
        self.transfer(chapter, "int", payer, payee, money(cents), with_id, as_number)

    @rule(pair=pairs(UUID_ACCOUNTS), cents=CENTS, with_id=st.booleans(),
          as_number=st.booleans())
    @guarded
    def transfer_uuid(self, pair, cents, with_id, as_number):
        payer, payee = (self.uuids[i] for i in pair)
        self.transfer("ch06", "uuid", payer, payee, money(cents), with_id, as_number)

    @rule(kind=st.sampled_from(["int", "uuid"]), int_chapter=INT_CHAPTER,
          pair=pairs(UUID_ACCOUNTS), extra_cents=st.integers(1, 10_000))
    @guarded
    def overdraw(self, kind, int_chapter, pair, extra_cents):
        """More than the payer has: InsufficientFunds, nothing moves."""
        payer, payee = (self.ids(kind)[i] for i in pair)
        amount = self.balance[payer] + money(extra_cents)
        self.transfer(int_chapter if kind == "int" else "ch06", kind, payer, payee, amount,
                      with_id=True, as_number=False)

    @rule(kind=st.sampled_from(["int", "uuid"]), int_chapter=INT_CHAPTER,
          which=st.sampled_from(["payer", "payee", "both"]), index=st.integers(0, 2),
          cents=CENTS, unknown_int=UNKNOWN_INT_IDS)
    @guarded
    def unknown_account(self, kind, int_chapter, which, index, cents, unknown_int):
        """An account that does not exist: AccountNotFound (or InsufficientFunds, when
        only the payee is unknown and the payer cannot pay: the payer is checked first)."""
        known = self.ids(kind)[index]
        unknown = unknown_int if kind == "int" else str(uuid.uuid4())
        payer, payee = {"payer": (unknown, known), "payee": (known, unknown),
                        "both": (unknown, unknown - 1 if kind == "int" else str(uuid.uuid4()))
                        }[which]
        self.transfer(int_chapter if kind == "int" else "ch06", kind, payer, payee, money(cents),
                      with_id=True, as_number=False)

    # --- rules: replays -------------------------------------------------------------------

    @rule(pick=PICK, int_chapter=INT_CHAPTER, as_number=st.booleans())
    @guarded
    def replay(self, pick, int_chapter, as_number):
        """The same request again: its first outcome, ``replayed``, no money moved. (An
        integer transfer is sent again through ch04 or ch05, a UUID one through ch06.)"""
        transfer_id = self.picked(pick)
        if transfer_id is None:
            return  # nothing acknowledged yet
        entry = self.ledger[transfer_id]
        handler_name = int_chapter if entry.kind == "int" else "ch06"
        event = entry.event(transfer_id, as_number)
        response, error = call(HANDLERS[handler_name], event)
        assert error is None, f"{handler_name} refused a replay {event!r}: {named(error)}"
        assert response.get("replayed") is True, f"{handler_name}: not a replay: {response}"
        assert response["transfer_id"] == transfer_id
        assert Decimal(response["payer_balance"]) == entry.payer_balance, (
            f"{handler_name}: replay answered {response['payer_balance']}, first outcome "
            f"{entry.payer_balance}")

    @rule(pick=PICK, change=st.sampled_from(["amount", "swap", "payee", "kind"]),
          int_chapter=INT_CHAPTER)
    @guarded
    def reuse_transfer_id(self, pick, change, int_chapter):
        """Another request under a used transfer_id: TransferIdReused, no money moved."""
        transfer_id = self.picked(pick)
        if transfer_id is None:
            return  # nothing acknowledged yet
        entry = self.ledger[transfer_id]
        kind, payer, payee, amount = entry.kind, entry.payer, entry.payee, entry.amount
        if change == "amount":
            amount += Decimal("0.01")
        elif change == "swap":
            payer, payee = payee, payer
        elif change == "payee":
            payee = next(i for i in self.ids(kind) if i not in (payer, payee))
        else:  # the other kind of account, the same transfer_id
            kind = "uuid" if kind == "int" else "int"
            payer, payee = self.ids(kind)[0], self.ids(kind)[1]
        handler_name = int_chapter if kind == "int" else "ch06"
        event = {"payer_id": payer, "payee_id": payee, "amount": f"{amount:f}",
                 "transfer_id": transfer_id}
        response, error = call(HANDLERS[handler_name], event)
        self.expect_refused(handler_name, event, response, error, TransferIdReused)

    # --- rules: malformed events and reads ------------------------------------------------

    @rule(case=st.sampled_from([
        "missing payer", "missing amount", "string id", "negative amount", "zero amount",
        "seven decimals", "same accounts", "bad uuid", "bad transfer_id", "boolean id",
        "not an object", "ch03 string id", "ch03 missing id", "ch03 zero id",
    ]), chapter=st.sampled_from(["ch04", "ch05", "ch06"]))
    @guarded
    def malformed(self, case, chapter):
        """A malformed event: InvalidRequest, no database work."""
        ids = self.uuids if chapter == "ch06" else self.ints
        good = {"payer_id": ids[0], "payee_id": ids[1], "amount": "1"}
        handler = HANDLERS[chapter]
        event: Any = dict(good)
        if case == "missing payer":
            del event["payer_id"]
        elif case == "missing amount":
            del event["amount"]
        elif case == "string id":  # ch06: an integer where a UUID string belongs
            event["payer_id"] = str(self.ints[0]) if chapter != "ch06" else 42
        elif case == "negative amount":
            event["amount"] = "-1"
        elif case == "zero amount":
            event["amount"] = 0
        elif case == "seven decimals":
            event["amount"] = "0.0000001"
        elif case == "same accounts":
            event["payee_id"] = event["payer_id"]
        elif case == "bad uuid":
            event["payee_id"] = "not-a-uuid" if chapter == "ch06" else self.uuids[0]
        elif case == "bad transfer_id":
            event["transfer_id"] = "1234"
        elif case == "boolean id":
            event["payer_id"] = True
        elif case == "not an object":
            event = [good]
        else:
            handler = ch03.handler
            event = {"ch03 string id": {"id": str(self.ints[0])}, "ch03 missing id": {},
                     "ch03 zero id": {"id": 0}}[case]
        response, error = call(handler, event)
        self.expect_refused(case, event, response, error, InvalidRequest)

    @rule()
    @guarded
    def read_balances(self):
        """ch03 on each integer account: the model's balance."""
        for account in self.ints:
            response, error = call(ch03.handler, {"id": account})
            assert error is None, f"ch03 refused a read of account {account}: {named(error)}"
            assert Decimal(response["balance"]) == self.balance[account], (
                f"ch03: balance {response['balance']} of {account}, the model says "
                f"{self.balance[account]}")

    @rule(unknown=UNKNOWN_INT_IDS)
    @guarded
    def read_unknown_balance(self, unknown):
        response, error = call(ch03.handler, {"id": unknown})
        self.expect_refused("ch03", {"id": unknown}, response, error, AccountNotFound)

    # --- rules: concurrency and faults ----------------------------------------------------

    @rule(kind=st.sampled_from(["int", "uuid"]),
          hot=st.lists(st.integers(0, 2), min_size=2, max_size=3, unique=True), plan=BURST)
    @guarded
    def burst(self, kind, hot, plan):
        """Threads at once, a few transfers each among 2-3 hot accounts.

        ch05 and ch06 retry conflicts: only InsufficientFunds may refuse one of theirs;
        ch04 may also report TransactionConflict. Which transfers were refused varies from
        run to run; the model takes in the ones acknowledged, and the invariant checks
        that they, and only they, moved the money and are in the ledger.
        """
        hot_ids = [self.ids(kind)[i] for i in hot]
        jobs = []
        for ops in plan:
            thread_jobs = []
            for i, j, cents, chapter in ops:
                payer, payee = hot_ids[i % len(hot_ids)], hot_ids[j % len(hot_ids)]
                if payer == payee:
                    payee = hot_ids[(i + 1) % len(hot_ids)]
                event = {"payer_id": payer, "payee_id": payee, "amount": f"{money(cents):f}",
                         "transfer_id": str(uuid.uuid4())}
                thread_jobs.append((chapter if kind == "int" else "ch06", event))
            jobs.append(thread_jobs)

        results: list[tuple[str, dict, dict | None, BaseException | None]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(jobs))

        def worker(thread_jobs):
            barrier.wait()  # all at once: the most contention
            for name, event in thread_jobs:
                try:
                    response, error = HANDLERS[name](event, Context()), None
                except BaseException as exc:  # noqa: BLE001 - judged below, in the main thread
                    response, error = None, exc
                with lock:
                    results.append((name, event, response, error))

        threads = [threading.Thread(target=worker, args=(j,)) for j in jobs]
        # The threads are other containers, serving invocations at the same time: the
        # pooled connection of this one (see warm_process) stays aside meanwhile, and
        # when the burst is over the others are gone, their connections closed. So what
        # ran on the pooled connection is what the steps ran, and an example replays as
        # it ran the first time: Hypothesis can shrink a failure.
        own = self.app_engine.connect()
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            kept = self.app_engine.connect()  # the threads' connection the pool kept
            own.close()  # back in the pool, the only one
            kept.close()  # beyond the pool's size: closed

        problems = []
        for name, event, response, error in results:
            if error is None:
                if "replayed" in response or Decimal(response["payer_balance"]) < 0:
                    problems.append(f"{name} {event!r} answered {response}")
                    continue
                amount = Decimal(event["amount"])
                payer, payee = event["payer_id"], event["payee_id"]
                self.balance[payer] -= amount
                self.balance[payee] += amount
                self.record(event["transfer_id"], Entry(
                    kind, payer, payee, amount, Decimal(response["payer_balance"])))
            elif not (isinstance(error, InsufficientFunds) or
                      (name == "ch04" and isinstance(error, TransactionConflict))):
                detail = "" if isinstance(error, BankError) else "raw " + "".join(
                    traceback.format_exception(error))
                problems.append(f"{name} {event!r}: {detail}{named(error)}")
        assert not problems, "in a burst:\n" + "\n".join(problems)

    @rule()
    @guarded
    def terminate_backends(self):
        """The application's backends die between two calls: the next calls must succeed."""
        self.kill_backends()

    def kill_backends(self) -> None:
        """pg_terminate_backend on this process's backends (those ``warm_process`` opened, not
        the test session's other engines'); back once they are gone."""
        with self.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            pids = conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY(:ours)"),
                {"ours": sorted(OPENED)}).scalars().all()
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) "
                              "AS pid"), {"pids": pids})
            deadline = time.monotonic() + 10
            while conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE pid = ANY(:pids)"), {"pids": pids}).scalar():
                assert time.monotonic() < deadline, f"backends {pids} still there after 10 s"
                time.sleep(0.001)  # a backend takes a moment to exit

    # --- invariants, after every step -----------------------------------------------------

    @invariant()
    @functools.partial(guarded, counted=False)  # a check after a step, not a step
    def the_database_agrees_with_the_model(self):
        ours = [str(i) for i in self.ints] + self.uuids
        with self.db.connect() as conn:  # between steps: nothing else writes
            rows = conn.execute(text(
                "SELECT id::text, balance FROM accounts WHERE id = ANY(:ints) UNION ALL "
                "SELECT id::text, balance FROM accounts2 WHERE id = ANY(CAST(:uuids AS uuid[]))"
            ), {"ints": self.ints, "uuids": self.uuids}).all()
            ledger = conn.execute(text(
                "SELECT id::text, payer_id, payee_id, amount, payer_balance FROM transfers "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(self.ledger)}).all()
        actual = dict(rows)
        model = {str(k): v for k, v in self.balance.items()}
        assert len(rows) == len(ours), f"accounts missing: {sorted(set(model) - set(actual))}"
        assert min(actual.values()) >= 0, f"a negative balance: {actual}"
        ints_total = sum(actual[str(i)] for i in self.ints)
        uuids_total = sum(actual[u] for u in self.uuids)
        assert (ints_total, uuids_total) == (START * INT_ACCOUNTS, START * UUID_ACCOUNTS), (
            f"money not conserved: {ints_total} on accounts, {uuids_total} on accounts2")
        assert actual == model, f"balances {actual}, the model says {model}"

        ids = [row[0] for row in ledger]
        assert len(ids) == len(set(ids)), "a transfer_id twice in the ledger"
        recorded = {row[0]: (row[1], row[2], row[3], row[4]) for row in ledger}
        expected = {tid: (str(e.payer), str(e.payee), e.amount, e.payer_balance)
                    for tid, e in self.ledger.items()}
        missing = sorted(set(expected) - set(recorded))
        assert not missing, f"acknowledged transfers not in the ledger: {missing}"
        assert recorded == expected, "ledger entries differ from the acknowledged transfers"

    @functools.partial(guarded, counted=False)
    def nothing_else_in_the_ledger(self):
        """The ledger holds no transfer of these accounts but the acknowledged ones. (Once,
        at the end of an example: the ledger has no index on the accounts, and grows.)"""
        ours = [str(i) for i in self.ints] + self.uuids
        with self.db.connect() as conn:
            ids = conn.execute(text(
                "SELECT id::text FROM transfers WHERE payer_id = ANY(:ours) "
                "OR payee_id = ANY(:ours)"), {"ours": ours}).scalars().all()
        unexpected = sorted(set(ids) - set(self.ledger))
        assert not unexpected, f"ledger entries never acknowledged: {unexpected}"


#: The backend pids of the connections ``warm_process``'s engine opened: the ones to kill.
OPENED: set[int] = set()


@pytest.fixture
def warm_process(engine):
    """The process-wide engine of this test, one for all its steps and examples.

    A Lambda container runs one request at a time, so every invocation reuses the one
    connection its pool holds. The steps from the main thread are that container: a pool
    of one connection (``pool_size=1``; the session's engine pools 12, for the
    concurrency tests, and would deal calls from one thread round all of them). The
    overflow is for the threads of a burst (see ``burst``).
    """
    app = local.application_engine(pool_size=1, max_overflow=BURST_THREADS)
    OPENED.clear()
    event.listen(app, "connect", lambda dbapi, _record: OPENED.add(dbapi.info.backend_pid))
    database.install_engine(app)
    yield app
    database.install_engine(engine)  # the session's engine again; this one is disposed


def test_a_warm_process_under_a_random_walk_of_handler_calls(database_url, warm_process):
    """The state machine above, on this session's schema, through the handlers' engine
    (one for the whole test) and a connection of the test's own to set up and check."""
    observer = local.setup_engine(database_url, pool_pre_ping=True)
    requests = logging.getLogger("bank.requests")
    level = requests.level
    requests.setLevel(logging.WARNING)  # thousands of calls: one INFO line each otherwise
    try:
        run_state_machine_as_test(lambda: BankMachine(observer, warm_process), settings=SETTINGS)
    finally:
        requests.setLevel(level)
        observer.dispose()
