# SPDX-License-Identifier: Apache-2.0
"""
Limits on metadata (docs/protocol.md "Limits"): msg_id 1-128 bytes,
content_type at most 255, push_title at most 256, push_body at most 1024
bytes of UTF-8. At each bound a send is accepted, one byte past it is
refused as bad input (PUBACK 0x87 on a publish, Reply 400 on a Send
request) and nothing is stored; and a Sync over messages carrying maximal
metadata stays within the reply's size bound.
"""

import pytest

from harness import PUBACK_NOT_AUTHORIZED
from inboxlib import (
    PUBACK_ACCEPTED,
    REPLY_BAD_REQUEST,
    REPLY_OK,
    Device,
    send_properties,
    start_inbox_broker,
)

# (publish property, Send field, limit in bytes)
LIMITS = [
    ("msg_id", "msg_id", 128),
    ("content_type", "content_type", 255),
    ("push_title", "push_title", 256),
    ("push_body", "push_body", 1024),
]
# The Sync reply bound (broker/common/protocol.h PG_SYNC_MAX_BYTES) and what one
# Reply adds around the envelopes.
SYNC_MAX_BYTES = 256 * 1024
REPLY_OVERHEAD = 64


@pytest.fixture(scope="module")
def broker(module_brokers, keys):
    return start_inbox_broker(module_brokers, keys, "limits", send_rate=0)


def text(n):
    """n bytes of UTF-8 that are not n characters: 'é' is two bytes."""
    return "é" * (n // 2) + "x" * (n % 2)


@pytest.mark.parametrize("prop,field,limit", LIMITS)
def test_publish_at_the_limit_is_stored_one_byte_past_is_refused(broker, keys, mqtt, pb, prop,
                                                                  field, limit):
    to = f"lp-{field}"
    svc = Device.login(mqtt, broker, keys, f"lps-{field}", "api", role="service")
    assert svc.chat(to, b"at", **{prop: text(limit)}) in PUBACK_ACCEPTED
    m = broker.mark()
    assert svc.chat(to, b"past", **{prop: text(limit + 1)}) == PUBACK_NOT_AUTHORIZED
    broker.expect_log(rf"refused send from lps-{field}:api to 'im/{to}/chat': .*{limit} bytes", m)
    alice = Device.login(mqtt, broker, keys, to)
    s = alice.sync()
    assert [m.body for m in s.messages] == [b"at"]
    assert s.head_seq == 1
    if field in ("msg_id", "content_type"):  # push texts go to the push service, not the envelope
        assert len(getattr(s.messages[0], field).encode()) == limit


@pytest.mark.parametrize("prop,field,limit", LIMITS)
def test_send_request_at_the_limit_is_stored_one_byte_past_is_refused(broker, keys, mqtt, pb,
                                                                       prop, field, limit):
    to = f"ls-{field}"
    svc = Device.login(mqtt, broker, keys, f"lss-{field}", "api", role="service")
    r = svc.send(to, b"at", **{field: text(limit)})
    assert (r.code, r.send.seq) == (REPLY_OK, 1)
    r = svc.send(to, b"past", **{field: text(limit + 1)})
    assert r.code == REPLY_BAD_REQUEST and f"{limit} bytes" in r.error
    s = Device.login(mqtt, broker, keys, to).sync()
    assert [m.body for m in s.messages] == [b"at"] and s.head_seq == 1


def test_empty_msg_id_property_is_refused(broker, keys, mqtt, pb):
    svc = Device.login(mqtt, broker, keys, "le-svc", "api", role="service")
    assert svc.chat("le-alice", b"x", msg_id="") == PUBACK_NOT_AUTHORIZED
    assert Device.login(mqtt, broker, keys, "le-alice").sync().head_seq == 0


def test_sync_over_maximal_metadata_stays_within_its_bound(broker, keys, mqtt, pb):
    # Empty bodies with a 255-byte content type: over 300 KiB of envelopes in
    # 1000 messages, more than the bound, none of it body bytes.
    svc = Device.login(mqtt, broker, keys, "lm-svc", "api", role="service")
    props = send_properties(content_type=text(255))
    codes = svc.publish_many("im/lm-alice/chat", [b""] * 1000, properties=props)
    assert all(c in PUBACK_ACCEPTED for c in codes)
    alice = Device.login(mqtt, broker, keys, "lm-alice")
    seen, after, pages = [], 0, 0
    while True:
        before = len(alice.client.messages)
        s = alice.sync(after_seq=after, limit=1000)
        sizes = [len(m.payload) for m in alice.client.messages[before:]
                 if m.topic == "im/lm-alice/reply"]
        assert sizes and sizes[-1] <= SYNC_MAX_BYTES + REPLY_OVERHEAD, f"a SyncReply of {sizes}"
        assert s.messages, "a sync that returns nothing cannot progress"
        seen.extend(m.seq for m in s.messages)
        after = s.messages[-1].seq
        pages += 1
        if not s.more:
            break
    assert seen == list(range(1, 1001))
    assert pages >= 2
