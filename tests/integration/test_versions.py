# SPDX-License-Identifier: Apache-2.0
"""
Every Mosquitto 2.0.x (docs/mosquitto.md): the plugins call only
what the broker exports, the inbox knows who frees a rewritten publish's
topic and properties on the broker under test, and when it cannot tell it
routes without rewriting and still keeps the contract.

scripts/test.sh runs the whole suite against Debian 12's 2.0.11 and the
bookworm-backports 2.0.21 (PIGEON_MOSQUITTO); with the ASan build a wrong
ownership guess is a double free or a leak, reported by the harness.
"""

import subprocess

import pytest

import harness
from inboxlib import PUBACK_ACCEPTED, Device, inbox_plugins

# Upstream's src/linker.syms (identical from 2.0.11 to 2.0.21): the only
# broker symbols a plugin may use. Everything else comes from libmosquitto.
PLUGIN_API = {
    "mosquitto_broker_publish", "mosquitto_broker_publish_copy", "mosquitto_callback_register",
    "mosquitto_callback_unregister", "mosquitto_calloc", "mosquitto_client_address",
    "mosquitto_client_certificate", "mosquitto_client_clean_session", "mosquitto_client_id",
    "mosquitto_client_keepalive", "mosquitto_client_protocol",
    "mosquitto_client_protocol_version", "mosquitto_client_sub_count",
    "mosquitto_client_username", "mosquitto_free", "mosquitto_kick_client_by_clientid",
    "mosquitto_kick_client_by_username", "mosquitto_log_printf", "mosquitto_malloc",
    "mosquitto_property_add_binary", "mosquitto_property_add_byte",
    "mosquitto_property_add_int16", "mosquitto_property_add_int32",
    "mosquitto_property_add_string", "mosquitto_property_add_string_pair",
    "mosquitto_property_add_varint", "mosquitto_property_free_all", "mosquitto_pub_topic_check",
    "mosquitto_realloc", "mosquitto_set_username", "mosquitto_strdup",
    "mosquitto_sub_topic_check", "mosquitto_topic_matches_sub", "mosquitto_validate_utf8",
}


def undefined_symbols(path):
    out = subprocess.run(["nm", "-D", "--undefined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("plugin", ["pigeon_auth.so", "pigeon_inbox.so", "pigeon_push.so"])
def test_plugins_use_only_the_exported_plugin_api(plugin):
    # libpigeon needs nothing from the broker at all.
    needed = {s for s in undefined_symbols(harness.build_path("lib", plugin))
              if s.startswith("mosquitto_")}
    assert needed <= PLUGIN_API, f"{plugin} needs non-exported {sorted(needed - PLUGIN_API)}"
    lib = {s for s in undefined_symbols(harness.build_path("lib", "libpigeon.so"))
           if s.startswith("mosquitto_")}
    assert lib == set()


def defined_symbols(path):
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("plugin", ["pigeon_auth.so", "pigeon_inbox.so", "pigeon_push.so"])
def test_plugins_export_only_their_entry_points(plugin):
    # Anything else would land in the broker's process, where another
    # plugin could clash with it.
    assert defined_symbols(harness.build_path("lib", plugin)) == {
        "mosquitto_plugin_version", "mosquitto_plugin_init", "mosquitto_plugin_cleanup"}


def test_libpigeon_exports_only_its_api():
    # (__odr_asan.* are AddressSanitizer's markers of exported globals.)
    for lib, api in (("libpigeon.so", ("pg_", "pigeon__")), ("libpigeon_store.so", ("pg_",)),
                     ("libpigeon_push.so", ("pg_",))):
        internal = {s for s in defined_symbols(harness.build_path("lib", lib))
                    if not s.startswith(api + ("__odr_asan",))}
        assert internal == set(), f"{lib} exports {sorted(internal)}"


def test_the_inbox_knows_the_broker_version(brokers, keys):
    b = brokers.start(inbox_plugins(keys, "v", brokers.workdir), name="v")
    version = ".".join(map(str, harness.mosquitto_version()))
    frees = "the broker frees" if harness.mosquitto_version() >= (2, 0, 15) else "pigeon frees"
    b.expect_log(rf"pigeon_inbox: broker {version}: {frees} replaced topics")


@pytest.fixture
def unknown(brokers, keys):
    """A broker whose version pigeon is told it cannot know."""
    b = brokers.start(inbox_plugins(keys, "unknown", brokers.workdir, send_rate=0),
                      name="unknown", env={"PIGEON_MOSQUITTO_VERSION": "unknown"})
    b.expect_log(r"pigeon_inbox: broker version unknown: publishes are routed without being "
                 r"rewritten")
    return b


def test_unknown_version_keeps_order_dedup_and_classes(unknown, keys, mqtt, pb):
    alice = Device.login(mqtt, unknown, keys, "u-alice")
    svc = Device.login(mqtt, unknown, keys, "u-svc", "api", role="service")
    codes = svc.publish_many("im/u-alice/chat", [b"m%d" % i for i in range(50)])
    assert all(c in PUBACK_ACCEPTED for c in codes)
    assert svc.publish("im/u-alice/chat", b"once", msg_id="k1") in PUBACK_ACCEPTED
    assert svc.publish("im/u-alice/chat", b"once again", msg_id="k1") in PUBACK_ACCEPTED
    assert svc.publish("im/u-alice/notify/like", b"liked", content_type="text/plain",
                       push_title="t") in PUBACK_ACCEPTED
    assert svc.publish("im/u-alice/instant", b"typing") in PUBACK_ACCEPTED
    inbox = alice.wait_inbox(53)
    stored = [e for e in inbox if e.seq]
    assert [e.seq for e in stored] == list(range(1, 53))
    assert [e.body for e in stored[:50]] == [b"m%d" % i for i in range(50)]
    assert (stored[50].body, stored[50].msg_id) == (b"once", "k1")
    assert (stored[51].kind, stored[51].type, stored[51].content_type) == \
        (pb.NOTIFY, "like", "text/plain")
    assert [e.body for e in inbox if e.kind == pb.INSTANT] == [b"typing"]
    # The resend was not delivered, and the sends themselves reached no one.
    assert len(alice.quiet_inbox()) == 53
    assert alice.other == []
    # Sync sees the same store.
    s = alice.sync()
    assert [m.seq for m in s.messages] == list(range(1, 53))
