# SPDX-License-Identifier: Apache-2.0
"""
Store faults on a real broker (docs/store.md, "When the store fails"): the
journal cannot be written (disk full), and SQLite takes no writes (its
database locked by another process). Throughout, the broker answers a ping
and a sync within 1 s, refuses (PUBACK 0x87) what it cannot store, never
acknowledges a message it then loses, keeps delivering INSTANT messages,
and recovers by itself; a kill -9 in the middle of either fault, then a
restart, leaves every acknowledged message stored exactly once, with
sequence numbers going on from there.

How the faults are made (the tests run as root, which ignores file modes):
- Disk full: RLIMIT_FSIZE 0 on the running broker (resource.prlimit on its
  pid), with SIGXFSZ left ignored (Broker.keep_ignored_signals), so every
  write that would grow a file fails with EFBIG, as on a full disk; raising
  the limit again is "space comes back".
- Database locked / read-only: another process (this one, through Python's
  sqlite3) holds BEGIN EXCLUSIVE on pigeon.db, so every write transaction of
  the store fails, which is also what a database that turned read-only does
  to the store (a chmod of the file would not: SQLite keeps its descriptors
  open, and root ignores modes anyway). Held long enough, it shows the
  persistent case: the backlog fills to its bound (64 MiB, filled here with
  1 MiB bodies) and new stored sends are refused with refused/store_busy.
"""

import re
import resource
import sqlite3
import time

import pytest

import harness
from harness import PUBACK_NOT_AUTHORIZED, SLOW, wait_until
from inboxlib import PUBACK_ACCEPTED, REPLY_OK, Device, inbox_plugins

REPLY_STORE_ERROR = 500
REPLY_BUSY = 503
BIG = 1 << 20


def start_fault_broker(pool, keys, name, **inbox_opts):
    """A broker with both plugins whose file writes can be made to fail (RLIMIT_FSIZE)."""
    opts = {"send_rate": 0}
    opts.update(inbox_opts)
    b = harness.Broker(pool.workdir, inbox_plugins(keys, name, pool.workdir, **opts), name=name)
    b.keep_ignored_signals = True
    pool.brokers.append(b)
    return b.start()


def set_fsize(broker, limit):
    resource.prlimit(broker.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def db_path(broker):
    return broker.dir / "pigeon.db"


class DbLock:
    """BEGIN EXCLUSIVE on the broker's database from this process, until release()."""

    def __init__(self, broker):
        self.con = sqlite3.connect(str(db_path(broker)), isolation_level=None, timeout=10)
        self.con.execute("BEGIN EXCLUSIVE")

    def release(self):
        if self.con is not None:
            self.con.execute("ROLLBACK")
            self.con.close()
            self.con = None


def assert_responsive(dev):
    """A PINGRESP and a SyncReply, each within 1 s."""
    t = time.monotonic()
    assert dev.client.ping(timeout=1.0), "no PINGRESP within 1 s"
    s = dev.sync(limit=10, timeout=1.0, attempts=1)
    assert time.monotonic() - t < 2.0
    return s


def body(i):
    return b"m%05d" % i


def send(svc, to, i, acked, refused):
    """One chat with body(i), recorded as acknowledged or refused."""
    code = svc.chat(to, body(i), msg_id="id-%d" % i)
    if code in PUBACK_ACCEPTED:
        acked.append(i)
    else:
        assert code == PUBACK_NOT_AUTHORIZED, f"PUBACK {code:#x}"
        refused.append(i)
    return code


def check_stored(dev, acked, sent):
    """
    dev's stored messages: seqs 1..n with no hole, every acknowledged one
    exactly once, in sending order, and nothing that was refused (only
    acknowledged messages, or ones whose PUBACK a kill cut off, are in
    `sent`). Returns the last SyncReply.
    """
    msgs, s = dev.sync_all()
    seqs = [m.seq for m in msgs]
    bodies = [m.body for m in msgs]
    assert seqs == list(range(1, len(msgs) + 1)) and s.head_seq == len(msgs), seqs
    assert len(set(bodies)) == len(bodies), "a message is stored twice"
    missing = [i for i in acked if body(i) not in bodies]
    assert not missing, f"acknowledged messages lost: {missing}"
    allowed = {body(i) for i in sent}
    assert all(b in allowed for b in bodies), "a refused message was stored"
    assert bodies == sorted(bodies)
    return s


def test_disk_full_refuses_sends_keeps_serving_and_recovers(brokers, keys, mqtt, pb):
    b = start_fault_broker(brokers, keys, "full")
    svc = Device.login(mqtt, b, keys, "f-svc", role="service")
    bob = Device.login(mqtt, b, keys, "f-bob")
    acked, refused = [], []
    for i in range(20):
        send(svc, "f-bob", i, acked, refused)
    assert len(acked) == 20
    set_fsize(b, 0)
    try:
        for i in range(20, 40):
            send(svc, "f-bob", i, acked, refused)
        assert refused == list(range(20, 40)), "a send was acknowledged with the disk full"
        r = svc.send("f-bob", b"by request")
        assert r.code == REPLY_STORE_ERROR
        # INSTANT is not stored: still delivered.
        assert svc.instant("f-bob", b"typing") in PUBACK_ACCEPTED
        assert bob.wait(lambda d: any(e.body == b"typing" and e.seq == 0 for e in d.inbox))
        s = assert_responsive(bob)
        assert [m.seq for m in s.messages] == list(range(1, 11)) and s.head_seq == 20
        # An ack is refused cleanly (it needs the journal too) or taken.
        assert bob.ack(5).code in (REPLY_OK, REPLY_STORE_ERROR)
        assert b.alive()
    finally:
        set_fsize(b, resource.RLIM_INFINITY)
    # Space is back: sends are taken again, with the next seqs.
    for i in range(40, 50):
        send(svc, "f-bob", i, acked, refused)
    assert acked == list(range(20)) + list(range(40, 50))
    s = check_stored(bob, acked, acked)
    assert s.head_seq == 30
    assert bob.ack(30).code == REPLY_OK


def test_kill9_while_the_disk_is_full(brokers, keys, mqtt, pb):
    b = start_fault_broker(brokers, keys, "fullkill")
    svc = Device.login(mqtt, b, keys, "k-svc", role="service")
    acked, refused = [], []
    for i in range(30):
        send(svc, "k-bob", i, acked, refused)
    set_fsize(b, 0)
    for i in range(30, 45):
        send(svc, "k-bob", i, acked, refused)
    assert len(acked) == 30 and len(refused) == 15
    b.kill9()
    mqtt.close_all()
    b.restart()
    bob = Device.login(mqtt, b, keys, "k-bob")
    s = check_stored(bob, acked, acked)
    assert s.head_seq == 30
    svc = Device.login(mqtt, b, keys, "k-svc", role="service")
    r = svc.send("k-bob", b"after", msg_id="id-after")
    assert r.code == REPLY_OK and r.send.seq == 31 and not r.send.duplicate
    # A refused msg-id was never stored: sending it now is new, not a duplicate.
    r = svc.send("k-bob", body(35), msg_id="id-35")
    assert r.code == REPLY_OK and r.send.seq == 32 and not r.send.duplicate


def locked_phase(b, svc, bob, acked, refused, first, seconds):
    """Sends chats to f-bob for `seconds` while checking the broker answers within 1 s."""
    i = first
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send(svc, bob.uid, i, acked, refused)
        assert_responsive(bob)
        i += 1
        time.sleep(0.05)
    return i


def fill_backlog(svc, to, n):
    """n chats of 1 MiB to `to`; (acknowledged indexes, refused indexes)."""
    acked, refused = [], []
    payload = b"x" * (BIG - 8)
    for k in range(n):
        code = svc.chat(to, b"%08d" % k + payload, timeout=10 * SLOW)
        (acked if code in PUBACK_ACCEPTED else refused).append(k)
        if code not in PUBACK_ACCEPTED:
            assert code == PUBACK_NOT_AUTHORIZED
    return acked, refused


def test_locked_database_keeps_the_broker_responsive_and_catches_up(brokers, keys, mqtt, pb):
    b = start_fault_broker(brokers, keys, "locked", max_body=BIG)
    svc = Device.login(mqtt, b, keys, "l-svc", role="service")
    bob = Device.login(mqtt, b, keys, "l-bob")
    acked, refused = [], []
    for i in range(10):
        send(svc, "l-bob", i, acked, refused)
    lock = DbLock(b)
    try:
        # Locked for several seconds (longer than the store's lock wait):
        # sends still go to the journal, and everything is answered at once.
        nxt = locked_phase(b, svc, bob, acked, refused, 10, 4.0)
        assert not refused and len(acked) == nxt
        # Held on, as a read-only database would: the backlog fills to its
        # bound and new stored sends are refused, the rest keeps working.
        big_acked, big_refused = fill_backlog(svc, "l-carol", 80)
        assert big_refused and big_acked, (len(big_acked), len(big_refused))
        assert big_refused == list(range(big_refused[0], 80))
        assert_responsive(bob)
        assert svc.instant("l-bob", b"still here") in PUBACK_ACCEPTED
        assert bob.wait(lambda d: any(e.body == b"still here" for e in d.inbox))
        assert wait_until(lambda: "refusing new stored sends" in b.log_text())
        r = svc.send("l-carol", b"x" * (BIG - 8))
        assert r.code == REPLY_BUSY and "retry later" in r.error, (r.code, r.error)
        # Acks have a reserve beyond the bound.
        assert bob.ack(5).code == REPLY_OK
    finally:
        lock.release()
    # The store catches up by itself; then stored sends are taken again.
    assert wait_until(lambda: "SQLite writes work again" in b.log_text(), timeout=30 * SLOW)
    # The store thread's lines reach Mosquitto's own log (log_dest), through
    # the broker thread, with Mosquitto's timestamp; none goes to stderr.
    log = b.log_bytes().decode(errors="replace")
    assert re.search(r"^\d+: pigeon store: SQLite writes work again", log, re.M), log[-3000:]
    assert re.search(r"^\d+: pigeon store: .*refusing new stored sends", log, re.M)
    out = b.out_path.read_text(errors="replace") if b.out_path.exists() else ""
    assert "pigeon store" not in out, out[-2000:]
    ok = wait_until(lambda: svc.chat("l-carol", b"%08d" % 80 + b"x" * (BIG - 8))
                    in PUBACK_ACCEPTED, timeout=10 * SLOW, interval=0.1)
    assert ok, "big sends still refused after the store caught up"
    big_acked.append(80)
    assert send(svc, "l-bob", nxt, acked, refused) in PUBACK_ACCEPTED
    check_stored(bob, acked, acked)
    carol = Device.login(mqtt, b, keys, "l-carol")
    msgs, s = carol.sync_all()
    assert [m.seq for m in msgs] == list(range(1, len(big_acked) + 1))
    assert [int(m.body[:8]) for m in msgs] == big_acked


def test_kill9_while_the_database_is_locked(brokers, keys, mqtt, pb):
    b = start_fault_broker(brokers, keys, "lockkill")
    svc = Device.login(mqtt, b, keys, "lk-svc", role="service")
    bob = Device.login(mqtt, b, keys, "lk-bob")
    acked, refused = [], []
    for i in range(10):
        send(svc, "lk-bob", i, acked, refused)
    lock = DbLock(b)
    try:
        nxt = locked_phase(b, svc, bob, acked, refused, 10, 2.5)
        # What was acknowledged meanwhile is in the journal only.
        b.kill9()
    finally:
        lock.release()
    assert not refused and len(acked) == nxt
    mqtt.close_all()
    b.restart()
    bob = Device.login(mqtt, b, keys, "lk-bob")
    s = check_stored(bob, acked, acked)
    assert s.head_seq == nxt
    svc = Device.login(mqtt, b, keys, "lk-svc", role="service")
    r = svc.send("lk-bob", b"after")
    assert r.code == REPLY_OK and r.send.seq == nxt + 1
    # Dedup of the journal-only ones survived too.
    r = svc.send("lk-bob", body(nxt - 1), msg_id="id-%d" % (nxt - 1))
    assert r.code == REPLY_OK and r.send.duplicate and r.send.seq == nxt
