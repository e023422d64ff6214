// SPDX-License-Identifier: Apache-2.0
//
// A fake push provider for the integration tests: it stands in for APNs,
// FCM, Huawei Push Kit, Xiaomi MiPush or a webhook receiver, and checks what
// the real provider checks (credentials, headers, payload shape and limits),
// answering a violation the way the real one would. Every push request is
// recorded with the fake's verdict, so a test can assert on exactly what the
// broker sent and what it was told.
//
//   node fake_provider.js --kind apns|fcm|huawei|xiaomi|webhook --cert C --key K --port 0
//        [--apns-key-pub PEM --apns-key-id ID --apns-team-id T [--apns-topic-prefix P]]
//        [--fcm-account-pub PEM --fcm-client-email E --fcm-project P]
//        [--huawei-app-id A --huawei-client-secret S]
//        [--xiaomi-app-secret S]
//        [--webhook-secret-file F]
//
// The provider listens with TLS on 127.0.0.1 (HTTP/2, HTTP/1.1 allowed for
// the token endpoints); a control API listens with plain HTTP/1 on another
// 127.0.0.1 port. When both are ready it prints one JSON line on stdout:
// {"port": N, "control": M}. It logs one line per request on stderr.
//
// Control API:
//   POST /mode  {"mode": M, "count": N, "retry_after": S, "delay_ms": D}
//               M applies to the next N push requests, then the mode goes back
//               to ok (count absent: until changed). retry_after: the
//               Retry-After header of throttle answers. delay_ms: answer late.
//               An explicit /mode also destroys streams held by a stall.
//   GET  /requests        every push request: {path, method, headers, body,
//                         json, verdict{status, reason}, t_ms, stream_session,
//                         stream_id, http_version}
//   GET  /token_requests  the same for the OAuth token endpoints
//   GET  /stats           {requests, sessions, distinct_provider_tokens,
//                          token_requests, tokens_issued}
//   POST /reset           mode ok, records and counters cleared, stalled
//                         streams destroyed, a down server listening again
//
// Modes: ok, unregistered, bad_device_token (APNs), invalid_token (FCM),
// illegal_token (Huawei), bad_regids (Xiaomi), expired_token, throttle,
// error500, error503, goaway, stall, down. A credential answered with
// expired_token stays expired: the broker has to get a new one.
//
// Node 18 APIs only (Debian 12's nodejs), built-in modules only.

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');

// ------------------------------------------------------------ arguments

function parseArgs(argv) {
	const out = {};
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (!a.startsWith('--'))
			fail(`unexpected argument ${a}`);
		const key = a.slice(2);
		const next = argv[i + 1];
		if (next === undefined || next.startsWith('--')) {
			out[key] = true;
		} else {
			out[key] = next;
			i++;
		}
	}
	return out;
}

function fail(msg) {
	process.stderr.write(`fake_provider: ${msg}\n`);
	process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const KIND = args.kind;
if (!['apns', 'fcm', 'huawei', 'xiaomi', 'webhook'].includes(KIND))
	fail('--kind apns|fcm|huawei|xiaomi|webhook');
if (!args.cert || !args.key)
	fail('--cert and --key are required');

function need(name) {
	if (!args[name] || args[name] === true)
		fail(`--kind ${KIND} needs --${name}`);
	return args[name];
}

const cfg = {};
if (KIND === 'apns') {
	cfg.keyPub = crypto.createPublicKey(fs.readFileSync(need('apns-key-pub')));
	cfg.keyId = need('apns-key-id');
	cfg.teamId = need('apns-team-id');
	cfg.topicPrefix = typeof args['apns-topic-prefix'] === 'string' ? args['apns-topic-prefix'] : null;
} else if (KIND === 'fcm') {
	cfg.accountPub = crypto.createPublicKey(fs.readFileSync(need('fcm-account-pub')));
	cfg.clientEmail = need('fcm-client-email');
	cfg.project = need('fcm-project');
} else if (KIND === 'huawei') {
	cfg.appId = need('huawei-app-id');
	cfg.clientSecret = need('huawei-client-secret');
} else if (KIND === 'xiaomi') {
	cfg.appSecret = need('xiaomi-app-secret');
} else if (KIND === 'webhook') {
	cfg.secret = fs.readFileSync(need('webhook-secret-file'));
}

const MAX_BODY_READ = 1 << 20; // what the fake reads of a body at most
const PAYLOAD_MAX = 4096;      // APNs, FCM, Huawei, MiPush payload limits

// ------------------------------------------------------------ state

let state;
function freshState() {
	return {
		mode: 'ok',
		count: null,        // push requests the mode still applies to (null: until changed)
		retryAfter: null,
		delayMs: 0,
		requests: [],
		tokenRequests: [],
		providerTokens: new Set(), // credentials seen on push requests
		tokensIssued: 0,
		sessions: 0,
	};
}
state = freshState();
// The provider's own memory, kept across /reset (a broker's cached access
// token stays good): access token -> expiry (ms), and the credentials
// answered with expired_token.
const issued = new Map();
const expired = new Set();
let tokenSerial = 0; // never reset: a token from before a reset is never reissued
let connSerial = 0;
const sockets = new Set();
const h2sessions = new Set();
let stalled = []; // {res, stream}
const jwtCache = new Map(); // JWT string -> null (signature etc. fine) or a failure

function log(msg) {
	process.stderr.write(`${new Date().toISOString()} fake ${KIND}: ${msg}\n`);
}

// ------------------------------------------------------------ helpers

function b64urlDecode(s) {
	if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s))
		return null;
	return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

function parseJson(buf) {
	try {
		return JSON.parse(typeof buf === 'string' ? buf : buf.toString('utf8'));
	} catch (e) {
		return undefined;
	}
}

// A compact JWS: {header, claims, signingInput, sig} or a string saying what is wrong.
function splitJwt(jwt) {
	const parts = jwt.split('.');
	if (parts.length !== 3)
		return 'not three parts';
	const h = b64urlDecode(parts[0]);
	const c = b64urlDecode(parts[1]);
	const s = b64urlDecode(parts[2]);
	if (!h || !c || !s)
		return 'not base64url';
	const header = parseJson(h);
	const claims = parseJson(c);
	if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object')
		return 'header or claims not a JSON object';
	return {header, claims, signingInput: parts[0] + '.' + parts[1], sig: s};
}

function isInt(v) {
	return typeof v === 'number' && Number.isInteger(v);
}

function parseForm(body) {
	const p = new URLSearchParams(body);
	const out = {};
	for (const [k, v] of p) {
		if (k in out)
			return {duplicate: k};
		out[k] = v;
	}
	return out;
}

function requestId() {
	return String(Date.now()) + String(Math.floor(Math.random() * 1e6)).padStart(6, '0');
}

// An answer: status, JSON (or text) body, extra headers, and the verdict's reason.
function answer(status, body, reason, headers) {
	return {status, body, reason, headers: headers || {}};
}

function retryAfterHeader() {
	return state.retryAfter != null ? {'retry-after': String(state.retryAfter)} : {};
}

// ------------------------------------------------------------ APNs

function apnsError(status, reason, why, extra) {
	return answer(status, Object.assign({reason}, extra || {}), why || reason);
}

// Verifies the provider token; null if good, else an answer.
function apnsCheckJwt(auth) {
	if (!auth)
		return apnsError(403, 'MissingProviderToken', 'authorization missing');
	const m = /^bearer (.+)$/i.exec(auth);
	if (!m)
		return apnsError(403, 'InvalidProviderToken', 'authorization not "bearer <JWT>"');
	const jwt = m[1].trim();
	if (expired.has(jwt))
		return apnsError(403, 'ExpiredProviderToken', 'provider token was answered expired before');
	let bad = jwtCache.get(jwt);
	if (bad === undefined) {
		bad = null;
		const t = splitJwt(jwt);
		if (typeof t === 'string') {
			bad = `JWT ${t}`;
		} else if (t.header.alg !== 'ES256') {
			bad = `JWT alg ${t.header.alg}, not ES256`;
		} else if (t.header.kid !== cfg.keyId) {
			bad = `JWT kid ${t.header.kid}, not ${cfg.keyId}`;
		} else if (t.claims.iss !== cfg.teamId) {
			bad = `JWT iss ${t.claims.iss}, not ${cfg.teamId}`;
		} else if (!isInt(t.claims.iat)) {
			bad = 'JWT iat missing or not an integer';
		} else if (t.sig.length !== 64) {
			bad = `JWT signature ${t.sig.length} bytes, not raw R||S (64)`;
		} else if (!crypto.verify('sha256', Buffer.from(t.signingInput),
		                          {key: cfg.keyPub, dsaEncoding: 'ieee-p1363'}, t.sig)) {
			bad = 'JWT signature does not verify';
		}
		if (bad === null)
			bad = {iat: t.claims.iat};
		jwtCache.set(jwt, bad);
	}
	if (typeof bad === 'string')
		return apnsError(403, 'InvalidProviderToken', bad);
	const now = Date.now() / 1000;
	if (bad.iat > now + 60)
		return apnsError(403, 'InvalidProviderToken', 'JWT iat in the future');
	if (bad.iat < now - 3600)
		return apnsError(403, 'ExpiredProviderToken', 'JWT iat older than an hour');
	return null;
}

function apnsVerify(req, body) {
	if (req.httpVersionMajor !== 2)
		return apnsError(505, 'HTTPVersionNotSupported', 'APNs requires HTTP/2');
	if (req.method !== 'POST')
		return apnsError(405, 'MethodNotAllowed', `method ${req.method}`);
	const m = /^\/3\/device\/([^/?]*)$/.exec(req.url);
	if (!m)
		return apnsError(404, 'BadPath', `path ${req.url}`);
	if (!m[1])
		return apnsError(400, 'MissingDeviceToken', 'no device token in the path');
	const h = req.headers;
	const bad = apnsCheckJwt(h.authorization);
	if (bad)
		return bad;
	if (!h['apns-topic'])
		return apnsError(400, 'MissingTopic', 'apns-topic missing');
	if (cfg.topicPrefix !== null && !h['apns-topic'].startsWith(cfg.topicPrefix))
		return apnsError(400, 'TopicDisallowed', `apns-topic ${h['apns-topic']}`);
	if (h['apns-push-type'] !== 'alert')
		return apnsError(400, 'InvalidPushType', `apns-push-type ${h['apns-push-type']}, not alert`);
	if (h['apns-priority'] !== '5' && h['apns-priority'] !== '10')
		return apnsError(400, 'BadPriority', `apns-priority ${h['apns-priority']}`);
	if (h['apns-expiration'] === undefined || !/^[0-9]+$/.test(h['apns-expiration']))
		return apnsError(400, 'BadExpirationDate', `apns-expiration ${h['apns-expiration']}`);
	if (h['apns-collapse-id'] !== undefined && Buffer.byteLength(h['apns-collapse-id']) > 64)
		return apnsError(400, 'BadCollapseId', 'apns-collapse-id longer than 64 bytes');
	if (body.length === 0)
		return apnsError(400, 'PayloadEmpty', 'empty body');
	if (body.length > PAYLOAD_MAX)
		return apnsError(413, 'PayloadTooLarge', `body ${body.length} bytes > ${PAYLOAD_MAX}`);
	const j = parseJson(body);
	if (!j || typeof j !== 'object' || Array.isArray(j))
		return apnsError(400, 'BadPayload', 'body not a JSON object');
	const aps = j.aps;
	if (!aps || typeof aps !== 'object')
		return apnsError(400, 'BadPayload', 'aps missing');
	if (!aps.alert || typeof aps.alert !== 'object')
		return apnsError(400, 'BadPayload', 'aps.alert not an object');
	for (const f of ['title', 'body'])
		if (aps.alert[f] !== undefined && typeof aps.alert[f] !== 'string')
			return apnsError(400, 'BadPayload', `aps.alert.${f} not a string`);
	if (typeof aps.alert.body !== 'string')
		return apnsError(400, 'BadPayload', 'aps.alert.body missing');
	if (!isInt(aps.badge) || aps.badge < 0)
		return apnsError(400, 'BadPayload', 'aps.badge not a non-negative integer');
	for (const f of ['seq', 'from', 'kind', 'type'])
		if (!(f in j))
			return apnsError(400, 'BadPayload', `custom data ${f} missing (outside aps)`);
	return null;
}

function apnsMode(mode, req) {
	switch (mode) {
	case 'unregistered':
		return apnsError(410, 'Unregistered', 'unregistered', {timestamp: Date.now()});
	case 'bad_device_token':
		return apnsError(400, 'BadDeviceToken', 'bad_device_token');
	case 'expired_token': {
		const m = /^bearer (.+)$/i.exec(req.headers.authorization || '');
		if (m)
			expired.add(m[1].trim());
		return apnsError(403, 'ExpiredProviderToken', 'expired_token');
	}
	case 'throttle':
		return answer(429, {reason: 'TooManyRequests'}, 'throttle', retryAfterHeader());
	case 'error500':
		return apnsError(500, 'InternalServerError', 'error500');
	case 'error503':
		return apnsError(503, 'ServiceUnavailable', 'error503');
	}
	return null;
}

function apnsOk() {
	return answer(200, null, 'ok', {'apns-id': crypto.randomUUID()});
}

// ------------------------------------------------------------ FCM

function gError(code, status, message, reason, details) {
	const e = {code, message, status};
	if (details)
		e.details = details;
	return answer(code, {error: e}, reason);
}

function fcmError(errorCode) {
	return [{'@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode}];
}

function fcmBadRequest(field, why) {
	const msg = `Invalid value at '${field}': ${why}`;
	return gError(400, 'INVALID_ARGUMENT', msg, `${field}: ${why}`,
	              [{'@type': 'type.googleapis.com/google.rpc.BadRequest',
	                fieldViolations: [{field, description: msg}]}]);
}

function oauthError(error, description, why) {
	return answer(400, {error, error_description: description}, why || description);
}

function fcmToken(req, body) {
	if (req.method !== 'POST')
		return answer(405, {error: 'invalid_request', error_description: 'POST only'}, 'method');
	const f = parseForm(body.toString('utf8'));
	if (f.duplicate)
		return oauthError('invalid_request', `duplicate ${f.duplicate}`);
	if (f.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
		return oauthError('unsupported_grant_type', `Invalid grant_type: ${f.grant_type}`);
	if (!f.assertion)
		return oauthError('invalid_request', 'Missing required parameter: assertion');
	const t = splitJwt(f.assertion);
	if (typeof t === 'string')
		return oauthError('invalid_grant', `Invalid JWT: ${t}`);
	if (t.header.alg !== 'RS256')
		return oauthError('invalid_grant', `Invalid JWT: alg ${t.header.alg}, not RS256`);
	if (!crypto.verify('sha256', Buffer.from(t.signingInput), cfg.accountPub, t.sig))
		return oauthError('invalid_grant', 'Invalid JWT Signature.');
	const c = t.claims;
	if (c.iss !== cfg.clientEmail)
		return oauthError('invalid_grant', `Invalid JWT: iss ${c.iss}, not ${cfg.clientEmail}`);
	const scopes = typeof c.scope === 'string' ? c.scope.split(' ') : [];
	if (!scopes.includes('https://www.googleapis.com/auth/firebase.messaging'))
		return oauthError('invalid_scope', `scope ${c.scope} lacks firebase.messaging`);
	const aud = `https://127.0.0.1:${listenPort}/token`;
	if (c.aud !== aud)
		return oauthError('invalid_grant', `Invalid JWT: aud ${c.aud}, not ${aud}`);
	const now = Date.now() / 1000;
	if (!isInt(c.iat) || !isInt(c.exp) || c.exp - c.iat > 3600 || c.exp <= c.iat ||
	    c.iat > now + 60 || c.exp < now)
		return oauthError('invalid_grant',
		                  'Invalid JWT: Token must be a short-lived token (60 minutes) and in a ' +
		                  'reasonable timeframe. Check your iat and exp values in the JWT claim.');
	const tok = `fake-fcm-${++tokenSerial}`;
	issued.set(tok, Date.now() + 3599 * 1000);
	state.tokensIssued++;
	return answer(200, {access_token: tok, expires_in: 3599, token_type: 'Bearer'}, 'ok');
}

// Checks a "Bearer <token>" the fake issued; null if good, else a reason.
function bearerProblem(auth) {
	if (!auth)
		return 'authorization missing';
	const m = /^Bearer (.+)$/.exec(auth);
	if (!m)
		return 'authorization not "Bearer <token>"';
	const tok = m[1].trim();
	if (expired.has(tok))
		return 'expired: token was answered expired before';
	const exp = issued.get(tok);
	if (exp === undefined)
		return 'token not issued by this provider';
	if (exp < Date.now())
		return 'expired: token past expires_in';
	return null;
}

function fcmUnauthenticated(why) {
	return gError(401, 'UNAUTHENTICATED',
	              'Request had invalid authentication credentials. Expected OAuth 2 access token, ' +
	              'login cookie or other valid authentication credential.', why);
}

function fcmVerify(req, body) {
	if (req.method !== 'POST')
		return gError(405, 'METHOD_NOT_ALLOWED', 'POST only', `method ${req.method}`);
	const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url);
	if (!m)
		return gError(404, 'NOT_FOUND', 'Requested entity was not found.', `path ${req.url}`);
	if (m[1] !== cfg.project)
		return gError(403, 'PERMISSION_DENIED', 'Permission denied on project',
		              `project ${m[1]}, not ${cfg.project}`);
	const bad = bearerProblem(req.headers.authorization);
	if (bad)
		return fcmUnauthenticated(bad);
	if (body.length > PAYLOAD_MAX)
		return gError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.',
		              `body ${body.length} bytes > ${PAYLOAD_MAX}`, fcmError('INVALID_ARGUMENT'));
	const j = parseJson(body);
	if (!j || typeof j !== 'object')
		return gError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.', 'body not JSON');
	const msg = j.message;
	if (!msg || typeof msg !== 'object')
		return fcmBadRequest('message', 'missing');
	if (typeof msg.token !== 'string' || !msg.token)
		return fcmBadRequest('message.token', 'missing or not a string');
	if (!msg.data || typeof msg.data !== 'object' || Array.isArray(msg.data))
		return fcmBadRequest('message.data', 'missing or not a map');
	let i = 0;
	for (const [k, v] of Object.entries(msg.data)) {
		if (typeof v !== 'string')
			return fcmBadRequest(`message.data[${i}].value`, `(TYPE_STRING) ${k}=${JSON.stringify(v)}`);
		i++;
	}
	for (const f of ['seq', 'from', 'kind', 'type', 'count'])
		if (!(f in msg.data))
			return fcmBadRequest(`message.data.${f}`, 'missing (pigeon contract)');
	return null;
}

function fcmMode(mode, req) {
	switch (mode) {
	case 'unregistered':
		return gError(404, 'NOT_FOUND', 'Requested entity was not found.', 'unregistered',
		              fcmError('UNREGISTERED'));
	case 'invalid_token':
		return gError(400, 'INVALID_ARGUMENT',
		              'The registration token is not a valid FCM registration token',
		              'invalid_token', fcmError('INVALID_ARGUMENT'));
	case 'expired_token': {
		const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
		if (m)
			expired.add(m[1].trim());
		return fcmUnauthenticated('expired_token');
	}
	case 'throttle': {
		const a = gError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', 'throttle',
		                 fcmError('QUOTA_EXCEEDED'));
		a.headers = retryAfterHeader();
		return a;
	}
	case 'error500':
		return gError(500, 'INTERNAL', 'Internal error encountered.', 'error500',
		              fcmError('INTERNAL'));
	case 'error503':
		return gError(503, 'UNAVAILABLE', 'The service is currently unavailable.', 'error503',
		              fcmError('UNAVAILABLE'));
	}
	return null;
}

function fcmOk() {
	return answer(200, {name: `projects/${cfg.project}/messages/${requestId()}`}, 'ok');
}

// ------------------------------------------------------------ Huawei

function hmsAnswer(status, code, msg, reason) {
	return answer(status, {code, msg, requestId: requestId()}, reason);
}

function huaweiToken(req, body) {
	const f = parseForm(body.toString('utf8'));
	const err = (d) => answer(400, {error: 1101, sub_error: 20001, error_description: d}, d);
	if (req.method !== 'POST')
		return err('POST only');
	if (f.duplicate)
		return err(`duplicate ${f.duplicate}`);
	if (f.grant_type !== 'client_credentials')
		return err(`grant_type ${f.grant_type}, not client_credentials`);
	if (f.client_id !== cfg.appId)
		return err(`client_id ${f.client_id}, not ${cfg.appId}`);
	if (f.client_secret !== cfg.clientSecret)
		return err('invalid client_secret');
	const tok = `fake-hms-${++tokenSerial}`;
	issued.set(tok, Date.now() + 3600 * 1000);
	state.tokensIssued++;
	return answer(200, {access_token: tok, expires_in: 3600, token_type: 'Bearer'}, 'ok');
}

function hmsIllegal(why) {
	return hmsAnswer(400, '80100003', `Illegal payload, ${why}`, why);
}

function huaweiVerify(req, body) {
	if (req.method !== 'POST')
		return hmsAnswer(405, '80100003', 'POST only', `method ${req.method}`);
	const m = /^\/v1\/([^/]+)\/messages:send$/.exec(req.url);
	if (!m)
		return hmsAnswer(404, '80100003', 'no such API', `path ${req.url}`);
	if (m[1] !== cfg.appId)
		return hmsAnswer(400, '80300002', 'The current app does not have the permission to send',
		                 `app id ${m[1]}, not ${cfg.appId}`);
	const bad = bearerProblem(req.headers.authorization);
	if (bad) {
		if (bad.startsWith('expired'))
			return hmsAnswer(401, '80200003', 'OAuth token expired', bad);
		return hmsAnswer(401, '80200001', 'Oauth authentication error', bad);
	}
	if (body.length > PAYLOAD_MAX)
		return hmsAnswer(400, '80300008', 'The message body size exceeds the default value',
		                 `body ${body.length} bytes > ${PAYLOAD_MAX}`);
	const j = parseJson(body);
	if (!j || typeof j !== 'object')
		return hmsIllegal('body not JSON');
	const msg = j.message;
	if (!msg || typeof msg !== 'object')
		return hmsIllegal('message missing');
	if (!Array.isArray(msg.token) || msg.token.length !== 1 || typeof msg.token[0] !== 'string' ||
	    !msg.token[0])
		return hmsIllegal('message.token not an array of one token');
	const a = msg.android;
	if (!a || typeof a !== 'object')
		return hmsIllegal('message.android missing');
	if (!isInt(a.collapse_key) || a.collapse_key < -1 || a.collapse_key > 100)
		return hmsIllegal(`android.collapse_key ${JSON.stringify(a.collapse_key)} not an integer -1..100`);
	const n = a.notification;
	if (!n || typeof n !== 'object')
		return hmsIllegal('android.notification missing');
	if (typeof n.title !== 'string' || typeof n.body !== 'string')
		return hmsIllegal('android.notification title/body not strings');
	if (!n.click_action || n.click_action.type !== 3)
		return hmsIllegal('android.notification.click_action.type not 3');
	if (n.badge !== undefined) {
		const b = n.badge;
		if (!b || typeof b !== 'object' || !isInt(b.set_num) || b.set_num < 0 || b.set_num > 99)
			return hmsIllegal('android.notification.badge.set_num not an integer 0..99');
	}
	if (typeof msg.data !== 'string')
		return hmsIllegal('message.data not a string');
	const d = parseJson(msg.data);
	if (!d || typeof d !== 'object')
		return hmsIllegal('message.data not a JSON object string');
	for (const f of ['seq', 'from', 'kind', 'type'])
		if (!(f in d))
			return hmsIllegal(`message.data lacks ${f} (pigeon contract)`);
	return null;
}

function huaweiMode(mode, req, j) {
	const tok = j && j.message && Array.isArray(j.message.token) ? j.message.token[0] : '';
	switch (mode) {
	case 'unregistered':
		return hmsAnswer(400, '80300007', 'All the tokens are invalid', 'unregistered');
	case 'illegal_token':
		return hmsAnswer(200, '80100000',
		                 JSON.stringify({success: 0, failure: 1, illegal_tokens: [tok]}),
		                 'illegal_token');
	case 'expired_token': {
		const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
		if (m)
			expired.add(m[1].trim());
		return hmsAnswer(401, '80200003', 'OAuth token expired', 'expired_token');
	}
	case 'throttle': {
		const a = hmsAnswer(429, '80300010', 'Flow control: too many requests', 'throttle');
		a.headers = retryAfterHeader();
		return a;
	}
	case 'error500':
		return hmsAnswer(500, '81000001', 'System inner error', 'error500');
	case 'error503':
		return hmsAnswer(503, '81000001', 'System inner error', 'error503');
	}
	return null;
}

function huaweiOk() {
	return hmsAnswer(200, '80000000', 'Success', 'ok');
}

// ------------------------------------------------------------ Xiaomi

function miAnswer(status, result, code, reason, why, data) {
	const b = {result, code, trace_id: requestId()};
	if (reason)
		b.reason = reason;
	if (data)
		b.data = data;
	return answer(status, b, why || reason);
}

function xiaomiVerify(req, body) {
	if (req.method !== 'POST')
		return miAnswer(405, 'error', 10001, 'POST only', `method ${req.method}`);
	if (req.url !== '/v3/message/regid')
		return miAnswer(404, 'error', 10001, 'no such API', `path ${req.url}`);
	if (req.headers.authorization !== `key=${cfg.appSecret}`)
		return miAnswer(200, 'error', 21301, 'Authentication failed',
		                `authorization ${JSON.stringify(req.headers.authorization)}, not key=<secret>`);
	const ct = req.headers['content-type'] || '';
	if (!ct.startsWith('application/x-www-form-urlencoded'))
		return miAnswer(200, 'error', 10017, 'invalid parameters', `content-type ${ct}`);
	const f = parseForm(body.toString('utf8'));
	const bad = (why) => miAnswer(200, 'error', 10017, 'invalid parameters', why);
	if (f.duplicate)
		return bad(`duplicate ${f.duplicate}`);
	if (!f.registration_id)
		return bad('registration_id missing');
	if (!f.restricted_package_name)
		return bad('restricted_package_name missing');
	if (typeof f.title !== 'string' || [...f.title].length >= 50)
		return bad(`title missing or not under 50 characters (${f.title && [...f.title].length})`);
	if (typeof f.description !== 'string' || [...f.description].length >= 128)
		return bad('description missing or not under 128 characters');
	if (f.notify_type !== '-1')
		return bad(`notify_type ${f.notify_type}, not -1`);
	if (f.pass_through !== '0')
		return bad(`pass_through ${f.pass_through}, not 0`);
	if (typeof f.payload !== 'string' || Buffer.byteLength(f.payload) > PAYLOAD_MAX)
		return bad('payload missing or over 4096 bytes');
	const p = parseJson(f.payload);
	if (!p || typeof p !== 'object')
		return bad('payload not a JSON object string');
	for (const k of ['seq', 'from', 'kind', 'type', 'badge'])
		if (!(k in p))
			return bad(`payload lacks ${k} (pigeon contract)`);
	if (f.notify_id === undefined || !/^-?[0-9]+$/.test(f.notify_id))
		return bad(`notify_id ${f.notify_id} not an integer`);
	return null;
}

function xiaomiMode(mode, req, j, form) {
	switch (mode) {
	case 'unregistered':
		return miAnswer(200, 'error', 20301, 'invalid registration id', 'unregistered');
	case 'bad_regids':
		return miAnswer(200, 'ok', 0, null, 'bad_regids',
		                {id: 'x', bad_regids: form.registration_id || ''});
	case 'expired_token':
		return miAnswer(200, 'error', 21301, 'Authentication failed', 'expired_token');
	case 'throttle': {
		const a = miAnswer(200, 'error', 10027, 'too frequent: the app has exceeded its quota',
		                   'throttle');
		a.headers = retryAfterHeader();
		return a;
	}
	case 'error500':
		return answer(500, 'Internal Server Error', 'error500');
	case 'error503':
		return answer(503, 'Service Unavailable', 'error503');
	}
	return null;
}

function xiaomiOk() {
	return miAnswer(200, 'ok', 0, null, 'ok', {id: `sdm${requestId()}`});
}

// ------------------------------------------------------------ webhook

function webhookVerify(req, body) {
	if (req.method !== 'POST')
		return answer(405, {error: 'POST only'}, `method ${req.method}`);
	const sig = req.headers['x-pigeon-signature'];
	if (!sig)
		return answer(401, {error: 'X-Pigeon-Signature missing'}, 'signature missing');
	const want = 'sha256=' + crypto.createHmac('sha256', cfg.secret).update(body).digest('hex');
	if (sig !== want)
		return answer(401, {error: 'bad signature'}, 'signature does not verify');
	const j = parseJson(body);
	if (!j || typeof j !== 'object')
		return answer(400, {error: 'body not JSON'}, 'body not a JSON object');
	return null;
}

function webhookMode(mode) {
	switch (mode) {
	case 'unregistered':
		return answer(410, {error: 'gone'}, 'unregistered');
	case 'expired_token':
		return answer(401, {error: 'expired'}, 'expired_token');
	case 'throttle':
		return answer(429, {error: 'slow down'}, 'throttle', retryAfterHeader());
	case 'error500':
		return answer(500, {error: 'internal'}, 'error500');
	case 'error503':
		return answer(503, {error: 'unavailable'}, 'error503');
	}
	return null;
}

// ------------------------------------------------------------ dispatch

const PROVIDER = {
	apns: {verify: apnsVerify, mode: apnsMode, ok: apnsOk},
	fcm: {verify: fcmVerify, mode: fcmMode, ok: fcmOk, token: '/token', issue: fcmToken},
	huawei: {verify: huaweiVerify, mode: huaweiMode, ok: huaweiOk, token: '/oauth2/v3/token',
	         issue: huaweiToken},
	xiaomi: {verify: xiaomiVerify, mode: xiaomiMode, ok: xiaomiOk},
	webhook: {verify: webhookVerify, mode: webhookMode, ok: () => answer(200, {ok: true}, 'ok')},
}[KIND];

// The credential a push request carries (for distinct_provider_tokens).
function credentialOf(req) {
	const a = req.headers.authorization;
	if (!a)
		return null;
	return a.replace(/^(bearer|key=)\s*/i, '');
}

function connId(req) {
	const s = req.httpVersionMajor === 2 ? req.stream.session.socket : req.socket;
	return s ? s.fakeConnId : undefined;
}

// The mode for this push request (consumes one of its count).
function takeMode() {
	const mode = state.mode;
	if (mode !== 'ok' && state.count !== null) {
		state.count--;
		if (state.count <= 0) {
			state.mode = 'ok';
			state.count = null;
		}
	}
	return mode;
}

function send(req, res, a) {
	if (res.destroyed || res.writableEnded || (req.stream && req.stream.destroyed))
		return;
	const headers = Object.assign({}, a.headers);
	let payload = '';
	if (a.body !== null && a.body !== undefined) {
		if (typeof a.body === 'string') {
			payload = a.body;
			headers['content-type'] = 'text/plain';
		} else {
			payload = JSON.stringify(a.body);
			headers['content-type'] = 'application/json; charset=UTF-8';
		}
	}
	headers['content-length'] = String(Buffer.byteLength(payload));
	try {
		res.writeHead(a.status, headers);
		res.end(payload);
	} catch (e) {
		log(`answer failed: ${e.message}`);
	}
}

function record(list, req, body, verdict) {
	const text = body.toString('utf8');
	const headers = {};
	for (const [k, v] of Object.entries(req.headers))
		if (!k.startsWith(':'))
			headers[k] = v;
	const j = parseJson(text);
	const r = {
		path: req.url,
		method: req.method,
		headers,
		body: text,
		json: j === undefined ? null : j,
		verdict,
		t_ms: Date.now(),
		stream_session: connId(req),
		stream_id: req.httpVersionMajor === 2 ? req.stream.id : null,
		http_version: req.httpVersion,
	};
	list.push(r);
	return r;
}

function handlePush(req, res, body) {
	const cred = credentialOf(req);
	if (cred)
		state.providerTokens.add(cred);
	const mode0 = state.mode;
	const delay = state.delayMs;
	// Transport-level modes act before any check.
	if (mode0 === 'stall') {
		takeMode();
		record(state.requests, req, body, {status: 0, reason: 'stall'});
		log(`${req.method} ${req.url} stalled`);
		stalled.push({req, res});
		return;
	}
	if (mode0 === 'goaway') {
		takeMode();
		record(state.requests, req, body, {status: 0, reason: 'goaway'});
		if (req.httpVersionMajor === 2) {
			const session = req.stream.session;
			const last = Math.max(0, req.stream.id - 2);
			log(`${req.method} ${req.url} stream ${req.stream.id}: GOAWAY last ${last}`);
			session.fakeGoaway = last;
			try {
				session.goaway(http2.constants.NGHTTP2_NO_ERROR, last);
			} catch (e) {
				log(`goaway failed: ${e.message}`);
			}
			setTimeout(() => session.destroy(), 100);
		} else {
			req.socket.destroy();
		}
		return;
	}
	// A session that sent GOAWAY refuses every later stream.
	// A stream the client already reset has no session any more: nothing to answer.
	if (req.httpVersionMajor === 2 && (req.stream.destroyed || !req.stream.session))
		return;
	if (req.httpVersionMajor === 2 && req.stream.session.fakeGoaway !== undefined &&
	    req.stream.id > req.stream.session.fakeGoaway) {
		record(state.requests, req, body, {status: 0, reason: 'refused after goaway'});
		try {
			req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
		} catch (e) { /* the session is going anyway */ }
		return;
	}
	let a = PROVIDER.verify(req, body);
	if (a) {
		a.reason = `invalid: ${a.reason}`;
	} else {
		const mode = takeMode();
		if (mode !== 'ok') {
			const form = KIND === 'xiaomi' ? parseForm(body.toString('utf8')) : {};
			a = PROVIDER.mode(mode, req, parseJson(body), form);
		}
		if (!a)
			a = PROVIDER.ok();
	}
	record(state.requests, req, body, {status: a.status, reason: a.reason});
	log(`${req.method} ${req.url} -> ${a.status} ${a.reason}`);
	if (delay > 0)
		setTimeout(() => send(req, res, a), delay);
	else
		send(req, res, a);
}

function handleToken(req, res, body) {
	const a = PROVIDER.issue(req, body);
	record(state.tokenRequests, req, body, {status: a.status, reason: a.reason});
	log(`token ${req.method} ${req.url} -> ${a.status} ${a.reason}`);
	send(req, res, a);
}

function onRequest(req, res) {
	const chunks = [];
	let size = 0;
	req.on('data', (c) => {
		size += c.length;
		if (size <= MAX_BODY_READ)
			chunks.push(c);
	});
	req.on('end', () => {
		const body = Buffer.concat(chunks);
		if (PROVIDER.token && req.url === PROVIDER.token)
			handleToken(req, res, body);
		else
			handlePush(req, res, body);
	});
	req.on('error', (e) => log(`request error: ${e.message}`));
}

// ------------------------------------------------------------ servers

const server = http2.createSecureServer({
	cert: fs.readFileSync(args.cert),
	key: fs.readFileSync(args.key),
	allowHTTP1: true,
}, onRequest);

server.on('secureConnection', (sock) => {
	sock.fakeConnId = ++connSerial;
	state.sessions++;
	sockets.add(sock);
	sock.on('close', () => sockets.delete(sock));
});
server.on('session', (s) => {
	h2sessions.add(s);
	s.on('close', () => h2sessions.delete(s));
	s.on('error', (e) => log(`session error: ${e.message}`));
});
server.on('tlsClientError', (e) => log(`TLS client error: ${e.message}`));
server.on('sessionError', (e) => log(`session error: ${e.message}`));

let listenPort = Number(args.port || 0);
let down = false;

function listen() {
	return new Promise((resolve, reject) => {
		const onErr = (e) => reject(e);
		server.once('error', onErr);
		server.listen(listenPort, '127.0.0.1', () => {
			server.removeListener('error', onErr);
			listenPort = server.address().port;
			resolve();
		});
	});
}

function dropConnections() {
	for (const s of h2sessions)
		s.destroy();
	for (const s of sockets)
		s.destroy();
}

async function goDown() {
	if (down)
		return;
	down = true;
	await new Promise((resolve) => {
		server.close(() => resolve());
		dropConnections();
	});
}

async function goUp() {
	if (!down)
		return;
	// The port was ours a moment ago; retry briefly if the kernel still holds it.
	for (let i = 0; ; i++) {
		try {
			await listen();
			down = false;
			return;
		} catch (e) {
			if (i >= 50)
				throw e;
			await new Promise((r) => setTimeout(r, 100));
		}
	}
}

function releaseStalled() {
	for (const {req, res} of stalled) {
		try {
			if (req.httpVersionMajor === 2)
				req.stream.close(http2.constants.NGHTTP2_CANCEL);
			else
				req.socket.destroy();
		} catch (e) { /* already gone */ }
		void res;
	}
	stalled = [];
}

const MODES = ['ok', 'unregistered', 'bad_device_token', 'invalid_token', 'illegal_token',
               'bad_regids', 'expired_token', 'throttle', 'error500', 'error503', 'goaway',
               'stall', 'down'];

function controlReply(res, status, obj) {
	const s = JSON.stringify(obj);
	res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(s)});
	res.end(s);
}

const control = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', async () => {
		try {
			const body = Buffer.concat(chunks).toString('utf8');
			if (req.method === 'POST' && req.url === '/mode') {
				const m = parseJson(body) || {};
				if (!MODES.includes(m.mode))
					return controlReply(res, 400, {error: `unknown mode ${m.mode}`});
				releaseStalled();
				state.mode = m.mode;
				state.count = isInt(m.count) && m.count > 0 ? m.count : null;
				state.retryAfter = m.retry_after != null ? m.retry_after : null;
				state.delayMs = isInt(m.delay_ms) ? m.delay_ms : 0;
				if (m.mode === 'down')
					await goDown();
				else
					await goUp();
				log(`mode ${m.mode} count ${state.count} retry_after ${state.retryAfter} delay ${state.delayMs}`);
				return controlReply(res, 200, {mode: state.mode, port: listenPort});
			}
			if (req.method === 'GET' && req.url === '/requests')
				return controlReply(res, 200, state.requests);
			if (req.method === 'GET' && req.url === '/token_requests')
				return controlReply(res, 200, state.tokenRequests);
			if (req.method === 'GET' && req.url === '/stats')
				return controlReply(res, 200, {
					requests: state.requests.length,
					sessions: state.sessions,
					distinct_provider_tokens: state.providerTokens.size,
					token_requests: state.tokenRequests.length,
					tokens_issued: state.tokensIssued,
					mode: state.mode,
					stalled: stalled.length,
				});
			if (req.method === 'POST' && req.url === '/reset') {
				releaseStalled();
				state = freshState();
				await goUp();
				log('reset');
				return controlReply(res, 200, {ok: true});
			}
			controlReply(res, 404, {error: `no ${req.method} ${req.url}`});
		} catch (e) {
			controlReply(res, 500, {error: String(e && e.stack || e)});
		}
	});
});

(async () => {
	await listen();
	await new Promise((resolve) => control.listen(0, '127.0.0.1', resolve));
	process.stdout.write(JSON.stringify({port: listenPort, control: control.address().port}) + '\n');
	log(`listening on 127.0.0.1:${listenPort}, control on ${control.address().port}`);
})().catch((e) => fail(String(e && e.stack || e)));

process.on('SIGTERM', () => process.exit(0));
// The test runner holds our stdin: when it goes away (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('uncaughtException', (e) => log(`uncaught: ${e && e.stack || e}`));
