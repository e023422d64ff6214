# SPDX-License-Identifier: Apache-2.0
"""
Helpers for the pigeon_inbox integration tests (test_inbox*.py, test_merge.py,
test_presence.py, test_durability.py), on top of harness.py:

  load_pb(dir)      pigeon_pb2 generated from proto/pigeon.proto by protoc at
                    test time (generated code is never committed)
  inbox_plugins()   the plugin list: pigeon_auth.so, then pigeon_inbox.so with
                    its database in the broker's own directory
  Device            one logged-in MQTT 5 client of a user (or service),
                    subscribed to im/<uid>/#, that decodes what it receives
                    (Envelopes, Replies, Presence, $SYS) and makes $CONTROL
                    requests; every wait is bounded

Tests use this through the fixtures in conftest.py (pb) and make Devices with
Device.login(mqtt, broker, keys, uid, device).
"""

import importlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import harness
from harness import CONNACK_OK, TIMEOUT, MqttClient, wait_until

PROTO_DIR = harness.REPO / "proto"
CONTROL_TOPIC = "$CONTROL/pigeon/v1"

# Reply.code values (broker/common/protocol.h).
REPLY_OK = 0
REPLY_BAD_REQUEST = 400
REPLY_FORBIDDEN = 403
REPLY_TOO_LARGE = 413
REPLY_RATE_LIMITED = 429
REPLY_NOT_AVAILABLE = 501

# A send that was accepted: 0x10 "no matching subscribers" when the
# recipient has no device connected (the message is stored all the same).
PUBACK_ACCEPTED = (harness.PUBACK_OK, harness.PUBACK_NO_SUBSCRIBERS)

pb = None  # pigeon_pb2, set by load_pb()


def load_pb(outdir):
    """Generates pigeon_pb2 into outdir with protoc and imports it."""
    global pb
    if pb is None:
        outdir = Path(outdir)
        subprocess.run(
            ["protoc", f"--proto_path={PROTO_DIR}", f"--python_out={outdir}",
             str(PROTO_DIR / "pigeon.proto")],
            check=True, capture_output=True, text=True)
        sys.path.insert(0, str(outdir))
        pb = importlib.import_module("pigeon_pb2")
    return pb


def inbox_plugins(keys, broker_name, workdir, auth=None, **inbox_opts):
    """
    (plugin, options) for a broker named broker_name in workdir: pigeon_auth
    (HS256, no failed-login limit) then pigeon_inbox with its database in the
    broker's directory (so a restart of that Broker reopens it) plus
    inbox_opts (sys_interval defaults to 0: no $SYS noise).
    """
    db = Path(workdir) / broker_name / "pigeon.db"
    opts = {"db_path": db, "sys_interval": 0}
    opts.update(inbox_opts)
    return [("pigeon_auth.so", keys.auth_options(login_fail_limit=0, **(auth or {}))),
            ("pigeon_inbox.so", opts)]


def start_inbox_broker(pool, keys, name, extra_config=(), auth=None, **inbox_opts):
    """Starts (in a harness.BrokerPool) a broker with both plugins; returns it."""
    return pool.start(inbox_plugins(keys, name, pool.workdir, auth=auth, **inbox_opts),
                      extra_config, name=name)


def send_properties(msg_id=None, ttl=None, content_type=None, push_title=None, push_body=None,
                    user=()):
    """MQTT 5 PUBLISH properties of a send (docs/protocol.md), or None if there are none."""
    pairs = [(k, str(v)) for k, v in (("msg-id", msg_id), ("ttl", ttl), ("push-title", push_title),
                                       ("push-body", push_body)) if v is not None]
    pairs += list(user)
    if not pairs and content_type is None:
        return None
    p = Properties(PacketTypes.PUBLISH)
    if pairs:
        p.UserProperty = pairs
    if content_type is not None:
        p.ContentType = content_type
    return p


class PigeonClient(MqttClient):
    """harness.MqttClient with an MQTT 5 session choice and publish properties."""

    def __init__(self, *a, clean_start=True, session_expiry=None, **kw):
        super().__init__(*a, **kw)
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.session_present = None  # from the CONNACK

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cv:
            self.session_present = bool(flags.get("session present"))
        super()._on_connect(client, userdata, flags, rc, properties)

    def connect(self, timeout=TIMEOUT):
        props = None
        if self.session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
        self.c.connect(self.broker.host, self.broker.port, keepalive=self.keepalive,
                       clean_start=self.clean_start, properties=props)
        self.c.loop_start()
        self._started = True
        self._wait(lambda: self.connack is not None or self.disconnects, timeout)
        return self.connack

    def publish(self, topic, payload=b"x", qos=1, retain=False, timeout=TIMEOUT,
                properties=None):
        """QoS 1 publish; returns the PUBACK reason code."""
        info = self.publish_nowait(topic, payload, properties)
        assert self._wait(lambda: info.mid in self.pubacks, timeout), \
            f"{self.client_id}: no PUBACK for {topic} within {timeout}s"
        return self.pubacks[info.mid]

    def publish_nowait(self, topic, payload, properties=None):
        """Queues a QoS 1 publish in paho (sent as its in-flight window allows)."""
        info = self.c.publish(topic, payload, qos=1, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish not queued: {info.rc}"
        return info


_request_ids = itertools.count(1)


class Device:
    """
    One device of a user: an MQTT 5 client logged in as <uid>:<device>,
    subscribed (QoS 1) to im/<uid>/#. Received messages are decoded on
    demand: inbox (Envelopes, in arrival order), replies (by Reply.id),
    presence (Presence, in order), sys ({topic: text}), other (raw).
    """

    def __init__(self, client, uid, device):
        self.client = client
        self.uid = uid
        self.device = device
        self._seen = 0
        self.inbox = []
        self.replies = {}
        self.presence = []
        self.sys = {}
        self.other = []

    @classmethod
    def login(cls, mqtt, broker, keys, uid, device="phone", role=None, subscribe=True,
              clean_start=True, session_expiry=None, extra_filters=()):
        claims = {"role": role} if role else {}
        c = PigeonClient(broker, f"{uid}:{device}", uid, keys.token(uid, **claims),
                         clean_start=clean_start, session_expiry=session_expiry)
        mqtt.clients.append(c)  # closed by the fixture
        rc = c.connect()
        assert rc == CONNACK_OK, f"{uid}:{device} login refused: {rc}\n" + broker.log_text()[-3000:]
        d = cls(c, uid, device)
        filters = ([f"im/{uid}/#"] if subscribe else []) + list(extra_filters)
        if filters:
            codes = d.client.subscribe(filters)
            assert codes == [1] * len(filters), f"SUBACK {codes} for {filters}"
        return d

    # ---- receiving

    def _collect(self):
        """Decodes messages received since the last call (holds the client's lock)."""
        with self.client.cv:
            new = self.client.messages[self._seen:]
            self._seen = len(self.client.messages)
        for m in new:
            parts = m.topic.split("/")
            if m.topic == f"im/{self.uid}/inbox":
                self.inbox.append(pb.Envelope.FromString(m.payload))
            elif m.topic == f"im/{self.uid}/reply":
                r = pb.Reply.FromString(m.payload)
                assert r.id not in self.replies, f"two replies with id {r.id}"
                self.replies[r.id] = r
            elif len(parts) == 3 and parts[0] == "im" and parts[2] == "presence":
                self.presence.append(pb.Presence.FromString(m.payload))
            elif m.topic.startswith("$SYS/"):
                self.sys[m.topic] = m.payload.decode()
            else:
                self.other.append(m)
        return self

    def wait(self, predicate, timeout=TIMEOUT):
        """Waits until predicate(self) is true (returns its value) or timeout (None)."""
        return wait_until(lambda: predicate(self._collect()), timeout, interval=0.005)

    def wait_inbox(self, n, timeout=TIMEOUT):
        """The inbox once it holds at least n envelopes (asserts it does in time)."""
        ok = self.wait(lambda d: len(d.inbox) >= n, timeout)
        assert ok, f"{self.uid}:{self.device}: {len(self.inbox)} of {n} envelopes within {timeout}s"
        return self.inbox

    def quiet_inbox(self, settle=0.3):
        """The inbox after nothing more has arrived for settle seconds."""
        n = -1
        while n != len(self._collect().inbox):
            n = len(self.inbox)
            time.sleep(settle)
        return self.inbox

    # ---- sending

    def publish(self, topic, payload, timeout=TIMEOUT, **props):
        """QoS 1 publish with send properties (send_properties); the PUBACK code."""
        return self.client.publish(topic, payload, timeout=timeout,
                                   properties=send_properties(**props))

    def publish_many(self, topic, payloads, timeout=TIMEOUT, properties=None):
        """
        Queues every payload as a QoS 1 publish at once (paho sends them as
        its in-flight window allows) and waits for all PUBACKs; their codes.
        """
        c = self.client
        with c.cv:
            before = len(c.pubacks)
        infos = [c.publish_nowait(topic, p, properties) for p in payloads]
        # Counting is O(1) per PUBACK; mids are unique below 65535 publishes per client.
        ok = c._wait(lambda: len(c.pubacks) - before >= len(infos), timeout)
        ok = ok and all(i.mid in c.pubacks for i in infos)
        assert ok, f"{self.client_id()}: {len(c.pubacks) - before} of {len(infos)} PUBACKs " \
                   f"in {timeout}s"
        return [c.pubacks[i.mid] for i in infos]

    def client_id(self):
        return f"{self.uid}:{self.device}"

    def chat(self, to, body, **props):
        return self.publish(f"im/{to}/chat", body, **props)

    def notify(self, to, type_, body, **props):
        return self.publish(f"im/{to}/notify/{type_}", body, **props)

    def instant(self, to, body, **props):
        return self.publish(f"im/{to}/instant", body, **props)

    # ---- $CONTROL requests

    def request_raw(self, payload, rid, timeout=TIMEOUT):
        """Publishes payload on $CONTROL/pigeon/v1; the Reply with id rid."""
        code = self.client.publish(CONTROL_TOPIC, payload, timeout=timeout)
        assert code in PUBACK_ACCEPTED, f"$CONTROL publish got PUBACK {code:#x}"
        ok = self.wait(lambda d: rid in d.replies, timeout)
        assert ok, f"{self.uid}:{self.device}: no Reply {rid} within {timeout}s"
        return self.replies[rid]

    def request(self, timeout=TIMEOUT, **body):
        """A Request with a fresh id and body (sync=..., ack=..., send=...); its Reply."""
        rid = next(_request_ids)
        return self.request_raw(pb.Request(id=rid, **body).SerializeToString(), rid, timeout)

    def sync(self, after_seq=0, limit=0, timeout=TIMEOUT, attempts=3):
        """
        One SyncRequest; the SyncReply (asserting code 0). Like any message to
        a device more than max_queued_messages behind, a Reply can be dropped
        by Mosquitto (docs/protocol.md), so a client repeats a request that
        got no reply: a sync is safe to repeat.
        """
        for attempt in range(attempts):
            try:
                r = self.request(sync=pb.SyncRequest(after_seq=after_seq, limit=limit),
                                 timeout=timeout)
                break
            except AssertionError:
                if attempt == attempts - 1:
                    raise
        assert r.code == REPLY_OK and r.WhichOneof("body") == "sync", f"sync failed: {r}"
        return r.sync

    def sync_all(self, after_seq=0, limit=1000, timeout=TIMEOUT):
        """Pages through sync from after_seq; (envelopes, last SyncReply)."""
        out = []
        while True:
            s = self.sync(after_seq, limit, timeout)
            out.extend(s.messages)
            if s.messages:
                after_seq = s.messages[-1].seq
            if not s.more:
                return out, s
            assert s.messages, "more=true with no messages: sync cannot progress"

    def ack(self, seq):
        return self.request(ack=pb.Ack(seq=seq))

    def send(self, to, body, kind=None, timeout=TIMEOUT, **fields):
        """A Send request (kind defaults to CHAT); its Reply."""
        kind = pb.CHAT if kind is None else kind
        return self.request(send=pb.Send(to=to, kind=kind, body=body, **fields), timeout=timeout)

    def close(self):
        self.client.close()
