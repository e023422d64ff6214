# SPDX-License-Identifier: Apache-2.0
"""
The fake push providers (fakepush/fake_provider.js) checked on their own,
driven by the curl CLI (HTTP/2 over TLS, the CA of pushlib.make_ca): each
accepts a correct request, refuses what the real provider refuses with the
real provider's answer, records what it saw, and plays its failure modes.
The push tests (test_push*.py) trust these fakes, so this file is what makes
their verdicts worth something.
"""

import json
import subprocess
import time
import urllib.parse
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import TIMEOUT
from pushlib import FCM_CLIENT_EMAIL, FCM_PROJECT

APNS_TOKEN = "a" * 64


def curl(url, ca, body=b"", headers=(), http="2", method="POST", max_time=5):
    """One request with the curl CLI: (exit code, status, {header: value}, body bytes)."""
    cmd = ["curl", "-sS", "--cacert", str(ca.ca_file), "-X", method, "--max-time", str(max_time),
           "-D", "-", "--output", "-", "--data-binary", "@-",
           "--http2" if http == "2" else "--http1.1"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    p = subprocess.run(cmd, input=body, capture_output=True, timeout=max_time + 5)
    out = p.stdout
    status, hdrs = None, {}
    # -D - writes the header block(s) before the body on stdout.
    while out.startswith(b"HTTP/"):
        head, _, out = out.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return p.returncode, status, hdrs, out


def js(body):
    return json.loads(body) if body else None


# ---------------------------------------------------------------- APNs


def apns_jwt(fake, iat=None, key=None, kid=None, iss=None, alg="ES256"):
    c = fake.creds
    key = key or serialization.load_pem_private_key(Path(c["key_file"]).read_bytes(), None)
    return jwt.encode({"iss": iss or c["team_id"], "iat": int(time.time()) if iat is None else iat},
                      key, algorithm=alg, headers={"kid": kid or c["key_id"]})


def apns_headers(fake, token=None, **over):
    h = {"authorization": f"bearer {token or apns_jwt(fake)}", "apns-topic": "com.example.pigeon",
         "apns-push-type": "alert", "apns-priority": "10", "apns-expiration": "0"}
    h.update(over)
    return [f"{k}: {v}" for k, v in h.items() if v is not None]


def apns_payload(**over):
    p = {"aps": {"alert": {"title": "t", "body": "b"}, "badge": 3}, "seq": 7, "from": "bob",
         "kind": "chat", "type": ""}
    p.update(over)
    return json.dumps(p).encode()


def apns_post(fake, ca, token=APNS_TOKEN, body=None, headers=None, **kw):
    return curl(f"{fake.url}/3/device/{token}", ca, apns_payload() if body is None else body,
                apns_headers(fake) if headers is None else headers, **kw)


def test_apns_accepts_a_correct_request_and_records_it(fakes):
    apns = fakes.start("apns")
    rc, status, hdrs, body = apns_post(apns, fakes.ca)
    assert (rc, status) == (0, 200), body
    assert hdrs.get("apns-id")
    (r,) = apns.requests()
    assert r["verdict"] == {"status": 200, "reason": "ok"}
    assert r["path"] == f"/3/device/{APNS_TOKEN}" and r["method"] == "POST"
    assert r["http_version"] == "2.0"
    assert r["headers"]["apns-topic"] == "com.example.pigeon"
    assert r["json"]["aps"]["badge"] == 3
    assert abs(r["t_ms"] - time.time() * 1000) < 10000
    s = apns.stats()
    assert (s["requests"], s["sessions"], s["distinct_provider_tokens"]) == (1, 1, 1)


@pytest.mark.parametrize("case, want_status, want_reason", [
    ("other_key", 403, "InvalidProviderToken"),
    ("der_signature", 403, "InvalidProviderToken"),
    ("wrong_kid", 403, "InvalidProviderToken"),
    ("wrong_iss", 403, "InvalidProviderToken"),
    ("old_iat", 403, "ExpiredProviderToken"),
    ("future_iat", 403, "InvalidProviderToken"),
    ("no_auth", 403, "MissingProviderToken"),
    ("no_topic", 400, "MissingTopic"),
    ("push_type", 400, "InvalidPushType"),
    ("priority", 400, "BadPriority"),
    ("no_priority", 400, "BadPriority"),
    ("expiration", 400, "BadExpirationDate"),
    ("collapse_id", 400, "BadCollapseId"),
    ("too_large", 413, "PayloadTooLarge"),
    ("badge_string", 400, "BadPayload"),
    ("no_custom_data", 400, "BadPayload"),
    ("no_device_token", 400, "MissingDeviceToken"),
])
def test_apns_refuses_what_apple_refuses(fakes, case, want_status, want_reason):
    apns = fakes.start("apns")
    other = ec.generate_private_key(ec.SECP256R1())
    token, headers, body = APNS_TOKEN, None, None
    if case == "other_key":
        headers = apns_headers(apns, apns_jwt(apns, key=other))
    elif case == "der_signature":
        # A JWT whose signature is the DER encoding instead of JOSE's raw R||S.
        good = apns_jwt(apns)
        h, c, _ = good.split(".")
        key = serialization.load_pem_private_key(Path(apns.creds["key_file"]).read_bytes(), None)
        der = key.sign(f"{h}.{c}".encode(), ec.ECDSA(hashes.SHA256()))
        headers = apns_headers(apns, f"{h}.{c}.{jwt.utils.base64url_encode(der).decode()}")
    elif case == "wrong_kid":
        headers = apns_headers(apns, apns_jwt(apns, kid="ABCDEFGHIJ"))
    elif case == "wrong_iss":
        headers = apns_headers(apns, apns_jwt(apns, iss="ABCDEFGHIJ"))
    elif case == "old_iat":
        headers = apns_headers(apns, apns_jwt(apns, iat=int(time.time()) - 3700))
    elif case == "future_iat":
        headers = apns_headers(apns, apns_jwt(apns, iat=int(time.time()) + 600))
    elif case == "no_auth":
        headers = [h for h in apns_headers(apns) if not h.startswith("authorization")]
    elif case == "no_topic":
        headers = apns_headers(apns, **{"apns-topic": None})
    elif case == "push_type":
        headers = apns_headers(apns, **{"apns-push-type": "background"})
    elif case == "priority":
        headers = apns_headers(apns, **{"apns-priority": "7"})
    elif case == "no_priority":
        headers = apns_headers(apns, **{"apns-priority": None})
    elif case == "expiration":
        headers = apns_headers(apns, **{"apns-expiration": "soon"})
    elif case == "collapse_id":
        headers = apns_headers(apns, **{"apns-collapse-id": "c" * 65})
    elif case == "too_large":
        body = apns_payload(pad="x" * 4096)
    elif case == "badge_string":
        body = json.dumps({"aps": {"alert": {"title": "t", "body": "b"}, "badge": "3"}, "seq": 1,
                           "from": "b", "kind": "chat", "type": ""}).encode()
    elif case == "no_custom_data":
        body = json.dumps({"aps": {"alert": {"title": "t", "body": "b"}, "badge": 1}}).encode()
    elif case == "no_device_token":
        token = ""
    rc, status, _, resp = apns_post(apns, fakes.ca, token=token, body=body, headers=headers)
    assert rc == 0
    assert (status, js(resp)["reason"]) == (want_status, want_reason)
    (r,) = apns.requests()
    assert r["verdict"]["status"] == want_status
    assert r["verdict"]["reason"].startswith("invalid: ")


def test_apns_collapse_id_of_64_bytes_is_fine(fakes):
    apns = fakes.start("apns")
    _, status, _, _ = apns_post(apns, fakes.ca, headers=apns_headers(
        apns, **{"apns-collapse-id": "c" * 64}))
    assert status == 200


def test_apns_refuses_http_1_1(fakes):
    apns = fakes.start("apns")
    rc, status, _, body = apns_post(apns, fakes.ca, http="1.1")
    assert (rc, status, js(body)["reason"]) == (0, 505, "HTTPVersionNotSupported")


def test_apns_failure_modes_answer_like_apple_then_count_runs_out(fakes):
    apns = fakes.start("apns")
    apns.set_mode("unregistered", count=1)
    _, status, _, body = apns_post(apns, fakes.ca)
    assert status == 410 and js(body)["reason"] == "Unregistered"
    assert isinstance(js(body)["timestamp"], int)
    assert apns_post(apns, fakes.ca)[1] == 200  # count 1: back to ok
    apns.set_mode("bad_device_token")
    for _ in range(2):  # no count: until changed
        _, status, _, body = apns_post(apns, fakes.ca)
        assert (status, js(body)["reason"]) == (400, "BadDeviceToken")
    apns.set_mode("throttle", retry_after=3)
    _, status, hdrs, body = apns_post(apns, fakes.ca)
    assert (status, js(body)["reason"], hdrs.get("retry-after")) == (429, "TooManyRequests", "3")
    for mode, want in (("error500", (500, "InternalServerError")),
                       ("error503", (503, "ServiceUnavailable"))):
        apns.set_mode(mode)
        _, status, _, body = apns_post(apns, fakes.ca)
        assert (status, js(body)["reason"]) == want
    apns.set_mode("ok")
    verdicts = [r["verdict"]["reason"] for r in apns.requests()]
    assert verdicts == ["unregistered", "ok", "bad_device_token", "bad_device_token", "throttle",
                        "error500", "error503"]


def test_apns_expired_token_stays_expired_until_a_new_jwt(fakes):
    apns = fakes.start("apns")
    old = apns_jwt(apns, iat=int(time.time()) - 10)
    apns.set_mode("expired_token", count=1)
    _, status, _, body = apns_post(apns, fakes.ca, headers=apns_headers(apns, old))
    assert (status, js(body)["reason"]) == (403, "ExpiredProviderToken")
    # The mode is over, but that JWT is not good again.
    _, status, _, body = apns_post(apns, fakes.ca, headers=apns_headers(apns, old))
    assert (status, js(body)["reason"]) == (403, "ExpiredProviderToken")
    assert apns_post(apns, fakes.ca, headers=apns_headers(apns, apns_jwt(apns)))[1] == 200
    assert apns.stats()["distinct_provider_tokens"] == 2


def test_apns_delay_answers_late(fakes):
    apns = fakes.start("apns")
    apns.set_mode("ok", delay_ms=700)
    t0 = time.monotonic()
    assert apns_post(apns, fakes.ca)[1] == 200
    assert time.monotonic() - t0 >= 0.7


def test_stall_never_answers_until_reset(fakes):
    apns = fakes.start("apns")
    apns.set_mode("stall")
    t0 = time.monotonic()
    rc, status, _, _ = apns_post(apns, fakes.ca, max_time=1)
    assert rc == 28 and status is None  # curl: operation timed out
    assert time.monotonic() - t0 >= 0.9
    assert apns.requests()[0]["verdict"]["reason"] == "stall"
    apns.reset()
    assert apns.stats()["stalled"] == 0 and apns.requests() == []
    assert apns_post(apns, fakes.ca)[1] == 200


def test_down_refuses_connections_then_comes_back_on_the_same_port(fakes):
    apns = fakes.start("apns")
    port = apns.port
    assert apns.set_mode("down")["port"] == port
    rc, status, _, _ = apns_post(apns, fakes.ca, max_time=2)
    assert rc == 7 and status is None  # curl: could not connect
    assert apns.set_mode("ok")["port"] == port
    assert apns_post(apns, fakes.ca)[1] == 200
    assert apns.stats()["sessions"] == 1


GOAWAY_CLIENT = r"""
// Three streams on one HTTP/2 session, the second after the first is answered.
const http2 = require('http2'), fs = require('fs');
const [url, ca, auth] = process.argv.slice(1);
const s = http2.connect(url, {ca: fs.readFileSync(ca)});
const out = {streams: {}, goaway: null};
s.on('goaway', (code, last) => { out.goaway = {code, last}; });
s.on('error', () => {});
function post(name) {
  return new Promise((resolve) => {
    const r = s.request({':method': 'POST', ':path': '/3/device/' + 'a'.repeat(64),
      authorization: 'bearer ' + auth, 'apns-topic': 'com.example.pigeon',
      'apns-push-type': 'alert', 'apns-priority': '10', 'apns-expiration': '0'});
    r.on('response', (h) => { out.streams[name] = {id: r.id, status: h[':status']}; });
    r.on('close', () => { out.streams[name] = out.streams[name] ||
                          {id: r.id, status: null, rst: r.rstCode}; resolve(); });
    r.on('error', () => {});
    r.end(JSON.stringify({aps: {alert: {title: 't', body: 'b'}, badge: 1}, seq: 1, from: 'b',
                          kind: 'chat', type: ''}));
    r.resume();
  });
}
(async () => {
  await post('first');
  await fetch('http://127.0.0.1:' + process.env.CONTROL + '/mode',
              {method: 'POST', body: JSON.stringify({mode: 'goaway', count: 1})});
  await Promise.race([Promise.all([post('second'), post('third')]),
                      new Promise((r) => setTimeout(r, 3000))]);
  console.log(JSON.stringify(out));
  process.exit(0);
})();
"""


def test_goaway_refuses_the_stream_it_arrived_on_and_closes_the_session(fakes):
    apns = fakes.start("apns")
    p = subprocess.run(["node", "-e", GOAWAY_CLIENT, apns.url, str(fakes.ca.ca_file),
                        apns_jwt(apns)], capture_output=True, text=True, timeout=15,
                       env={"CONTROL": str(apns.control), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    first, second = out["streams"]["first"], out["streams"]["second"]
    assert first == {"id": 1, "status": 200}
    assert second["status"] is None and second["id"] == 3
    assert out["goaway"] == {"code": 0, "last": 1}
    assert out["streams"]["third"]["status"] is None
    verdicts = [r["verdict"]["reason"] for r in apns.requests()]
    assert verdicts[:2] == ["ok", "goaway"]
    assert all(v != "ok" for v in verdicts[2:])
    # The next connection is served normally.
    assert apns_post(apns, fakes.ca)[1] == 200


# ---------------------------------------------------------------- FCM


def fcm_assertion(fake, **over):
    key = serialization.load_pem_private_key(
        json.loads(Path(fake.creds["account_file"]).read_text())["private_key"].encode(), None)
    now = int(time.time())
    claims = {"iss": FCM_CLIENT_EMAIL, "scope": "https://www.googleapis.com/auth/firebase.messaging",
              "aud": fake.token_url, "iat": now, "exp": now + 3600}
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256")


def form(**fields):
    return urllib.parse.urlencode(fields).encode()


def fcm_token(fake, ca, **over):
    return curl(fake.token_url, ca, form(
        grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion=fcm_assertion(fake, **over)),
        ["content-type: application/x-www-form-urlencoded"], http="1.1")


def fcm_send(fake, ca, access, data=None, token="fcm-device-1"):
    data = {"seq": "1", "from": "bob", "kind": "chat", "type": "", "count": "1"} \
        if data is None else data
    msg = {"message": {"token": token, "data": data, "notification": {"title": "t", "body": "b"}}}
    return curl(f"{fake.url}/v1/projects/{FCM_PROJECT}/messages:send", ca,
                json.dumps(msg).encode(),
                [f"authorization: Bearer {access}", "content-type: application/json"])


def test_fcm_token_endpoint_then_send(fakes):
    fcm = fakes.start("fcm")
    account = json.loads(Path(fcm.creds["account_file"]).read_text())
    assert account["type"] == "service_account" and account["token_uri"] == fcm.token_url
    rc, status, _, body = fcm_token(fcm, fakes.ca)
    assert (rc, status) == (0, 200), body
    tok = js(body)
    assert tok["access_token"].startswith("fake-fcm-") and tok["expires_in"] == 3599
    assert tok["token_type"] == "Bearer"
    _, status, _, body = fcm_send(fcm, fakes.ca, tok["access_token"])
    assert status == 200, body
    assert js(body)["name"].startswith(f"projects/{FCM_PROJECT}/messages/")
    s = fcm.stats()
    assert (s["requests"], s["token_requests"], s["distinct_provider_tokens"]) == (1, 1, 1)


@pytest.mark.parametrize("over, want", [
    ({"aud": "https://oauth2.googleapis.com/token"}, "invalid_grant"),
    ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
    ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "invalid_scope"),
    ({"exp": int(time.time()) + 7200}, "invalid_grant"),
])
def test_fcm_token_endpoint_refuses_a_bad_assertion(fakes, over, want):
    fcm = fakes.start("fcm")
    _, status, _, body = fcm_token(fcm, fakes.ca, **over)
    assert (status, js(body)["error"]) == (400, want)
    assert fcm.stats()["tokens_issued"] == 0


def test_fcm_refuses_non_string_data_and_unknown_tokens(fakes):
    fcm = fakes.start("fcm")
    access = js(fcm_token(fcm, fakes.ca)[3])["access_token"]
    _, status, _, body = fcm_send(fcm, fakes.ca, access, data={
        "seq": 1, "from": "bob", "kind": "chat", "type": "", "count": "1"})
    e = js(body)["error"]
    assert (status, e["status"]) == (400, "INVALID_ARGUMENT")
    assert e["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    _, status, _, body = fcm_send(fcm, fakes.ca, "ya29.forged")
    assert (status, js(body)["error"]["status"]) == (401, "UNAUTHENTICATED")


def test_fcm_failure_modes(fakes):
    fcm = fakes.start("fcm")
    access = js(fcm_token(fcm, fakes.ca)[3])["access_token"]
    fcm.set_mode("unregistered", count=1)
    _, status, _, body = fcm_send(fcm, fakes.ca, access)
    e = js(body)["error"]
    assert (status, e["status"]) == (404, "NOT_FOUND")
    assert e["details"] == [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "UNREGISTERED"}]
    fcm.set_mode("invalid_token", count=1)
    _, status, _, body = fcm_send(fcm, fakes.ca, access)
    e = js(body)["error"]
    assert (status, e["status"], e["details"][0]["errorCode"]) == (400, "INVALID_ARGUMENT",
                                                                   "INVALID_ARGUMENT")
    assert e["message"] == "The registration token is not a valid FCM registration token"
    fcm.set_mode("expired_token", count=1)
    assert fcm_send(fcm, fakes.ca, access)[1] == 401
    assert fcm_send(fcm, fakes.ca, access)[1] == 401  # that token stays expired
    access2 = js(fcm_token(fcm, fakes.ca)[3])["access_token"]
    assert access2 != access and fcm_send(fcm, fakes.ca, access2)[1] == 200
    fcm.set_mode("throttle", retry_after=1)
    _, status, hdrs, _ = fcm_send(fcm, fakes.ca, access2)
    assert (status, hdrs.get("retry-after")) == (429, "1")


# ---------------------------------------------------------------- Huawei


def hms_token(fake, ca, secret=None):
    c = fake.creds
    return curl(fake.token_url, ca, form(grant_type="client_credentials", client_id=c["app_id"],
                                         client_secret=secret or c["client_secret"]),
                ["content-type: application/x-www-form-urlencoded"])


def hms_send(fake, ca, access, collapse_key=-1, badge=3, token="hms-device-1"):
    n = {"title": "t", "body": "b", "click_action": {"type": 3}}
    if badge is not None:
        n["badge"] = {"set_num": badge}
    msg = {"message": {"token": [token], "android": {"collapse_key": collapse_key,
                                                     "notification": n},
                       "data": json.dumps({"seq": 1, "from": "bob", "kind": "chat", "type": ""})}}
    return curl(f"{fake.url}/v1/{fake.creds['app_id']}/messages:send", ca,
                json.dumps(msg).encode(),
                [f"authorization: Bearer {access}", "content-type: application/json"])


def test_huawei_token_then_send_and_its_checks(fakes):
    hms = fakes.start("huawei")
    _, status, _, body = hms_token(hms, fakes.ca, secret="wrong")
    assert status == 400
    _, status, _, body = hms_token(hms, fakes.ca)
    tok = js(body)
    assert status == 200 and tok["access_token"].startswith("fake-hms-")
    assert tok["expires_in"] == 3600
    _, status, _, body = hms_send(hms, fakes.ca, tok["access_token"])
    assert (status, js(body)["code"], js(body)["msg"]) == (200, "80000000", "Success")
    _, status, _, body = hms_send(hms, fakes.ca, tok["access_token"], collapse_key=101)
    assert (status, js(body)["code"]) == (400, "80100003")
    _, status, _, body = hms_send(hms, fakes.ca, tok["access_token"], badge=100)
    assert (status, js(body)["code"]) == (400, "80100003")
    _, status, _, body = hms_send(hms, fakes.ca, "forged")
    assert (status, js(body)["code"]) == (401, "80200001")
    reasons = [r["verdict"]["reason"] for r in hms.requests()]
    assert reasons[0] == "ok" and all(r.startswith("invalid: ") for r in reasons[1:])


def test_huawei_failure_modes(fakes):
    hms = fakes.start("huawei")
    access = js(hms_token(hms, fakes.ca)[3])["access_token"]
    hms.set_mode("unregistered", count=1)
    _, status, _, body = hms_send(hms, fakes.ca, access)
    assert (status, js(body)["code"], js(body)["msg"]) == (400, "80300007",
                                                          "All the tokens are invalid")
    assert js(body)["requestId"]
    hms.set_mode("illegal_token", count=1)
    _, status, _, body = hms_send(hms, fakes.ca, access, token="hms-bad")
    assert (status, js(body)["code"]) == (200, "80100000")
    assert json.loads(js(body)["msg"]) == {"success": 0, "failure": 1,
                                           "illegal_tokens": ["hms-bad"]}
    hms.set_mode("expired_token", count=1)
    _, status, _, body = hms_send(hms, fakes.ca, access)
    assert (status, js(body)["code"], js(body)["msg"]) == (401, "80200003", "OAuth token expired")
    assert hms_send(hms, fakes.ca, access)[1] == 401
    access2 = js(hms_token(hms, fakes.ca)[3])["access_token"]
    assert hms_send(hms, fakes.ca, access2)[1] == 200
    assert hms.stats()["token_requests"] == 2


# ---------------------------------------------------------------- Xiaomi


def mi_send(fake, ca, secret=None, **over):
    f = {"registration_id": "mi-device-1", "restricted_package_name": "com.example.pigeon",
         "title": "t", "description": "b", "notify_type": "-1", "pass_through": "0",
         "payload": json.dumps({"seq": 1, "from": "bob", "kind": "chat", "type": "", "badge": 2}),
         "notify_id": "0"}
    f.update(over)
    return curl(f"{fake.url}/v3/message/regid", ca,
                form(**{k: v for k, v in f.items() if v is not None}),
                [f"authorization: key={secret or fake.creds['app_secret']}",
                 "content-type: application/x-www-form-urlencoded"])


def test_xiaomi_accepts_a_correct_send_and_checks_it(fakes):
    mi = fakes.start("xiaomi")
    _, status, _, body = mi_send(mi, fakes.ca)
    assert (status, js(body)["result"], js(body)["code"]) == (200, "ok", 0)
    assert js(body)["data"]["id"]
    for over, secret in (({}, "wrong"), ({"title": "x" * 50}, None),
                         ({"description": "y" * 128}, None), ({"notify_type": "1"}, None),
                         ({"payload": "not json"}, None), ({"notify_id": "x"}, None),
                         ({"restricted_package_name": None}, None)):
        _, status, _, body = mi_send(mi, fakes.ca, secret=secret, **over)
        assert status == 200 and js(body)["result"] == "error", (over, body)
    # 49 characters of three bytes each: under 50 characters is what counts.
    assert js(mi_send(mi, fakes.ca, title="é" * 49)[3])["result"] == "ok"


def test_xiaomi_failure_modes(fakes):
    mi = fakes.start("xiaomi")
    mi.set_mode("unregistered", count=1)
    body = js(mi_send(mi, fakes.ca)[3])
    assert (body["result"], body["code"], body["reason"]) == ("error", 20301,
                                                              "invalid registration id")
    mi.set_mode("bad_regids", count=1)
    body = js(mi_send(mi, fakes.ca, registration_id="mi-gone")[3])
    assert (body["result"], body["code"], body["data"]["bad_regids"]) == ("ok", 0, "mi-gone")
    mi.set_mode("throttle", count=1)
    status, body = mi_send(mi, fakes.ca)[1:4:2]
    assert (status, js(body)["code"]) == (200, 10027)


# ---------------------------------------------------------------- webhook


def test_webhook_verifies_the_signature(fakes):
    import hashlib
    import hmac

    hook = fakes.start("webhook")
    body = json.dumps({"token": "w1", "platform": "webhook", "badge": 1}).encode()
    good = hmac.new(hook.creds["secret"].encode(), body, hashlib.sha256).hexdigest()
    url = hook.url + "/hook"
    ct = "content-type: application/json"
    assert curl(url, fakes.ca, body, [ct, f"x-pigeon-signature: sha256={good}"])[1] == 200
    assert curl(url, fakes.ca, body, [ct, f"x-pigeon-signature: sha256={'0' * 64}"])[1] == 401
    assert curl(url, fakes.ca, body, [ct])[1] == 401
    assert curl(url, fakes.ca, body + b" ", [ct, f"x-pigeon-signature: sha256={good}"])[1] == 401
    hook.set_mode("unregistered", count=1)
    assert curl(url, fakes.ca, body, [ct, f"x-pigeon-signature: sha256={good}"])[1] == 410
    assert [r["verdict"]["status"] for r in hook.requests()] == [200, 401, 401, 401, 410]


def test_wait_requests_is_bounded_and_says_what_it_saw(fakes):
    apns = fakes.start("apns")
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="0 of 1 push requests"):
        apns.wait_requests(1, timeout=0.3)
    assert time.monotonic() - t0 < TIMEOUT
