// SPDX-License-Identifier: Apache-2.0
//
// A lean APNs-like HTTP/2 server for the benchmark suite's push workload only
// (bench/suite/workloads.py). The integration tests'
// tests/integration/fakepush/fake_provider.js records and logs every request,
// and under pigeon's bursts of up to 1,000 concurrent streams its default
// HTTP/2 session memory runs out and it refuses streams. This one checks what
// costs little and matters for the figure, and keeps nothing per request:
//
//   - HTTP/2 over TLS, POST /3/device/<token>, like APNs;
//   - the bearer provider token (ES256 JWT: alg, kid, iss, iat, signature)
//     verified once per distinct token, then looked up;
//   - apns-topic present, apns-push-type alert, a JSON body with aps.alert
//     and an integer aps.badge;
//   - answers 200 with an apns-id, or 400/403 with APNs' reason.
//
//   node fake_apns.js --cert C --key K --port 0 --apns-key-pub PEM
//        --apns-key-id ID --apns-team-id T [--max-streams N (1000)]
//
// Prints {"port": N, "control": M} on stdout when ready. Control API (plain
// HTTP on 127.0.0.1:M):
//   GET  /stats   {requests, ok, messages, rejected, sessions, goaways, resets, stalled, mode}
//   POST /mode    {"mode": "ok" | "stall"}: stall holds every later request
//                 without an answer (until the mode changes or /reset; held
//                 streams are then cancelled)
//   POST /reset   counters to zero, mode ok, held streams cancelled
// Exits when its stdin ends (the suite holds it) or on SIGTERM.
// Node 18 APIs only, built-in modules only.

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const http2 = require('http2');

function fail(msg) {
	process.stderr.write(`fake_apns: ${msg}\n`);
	process.exit(2);
}

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
	const k = process.argv[i];
	if (!k.startsWith('--') || process.argv[i + 1] === undefined)
		fail(`bad argument ${k}`);
	args[k.slice(2)] = process.argv[i + 1];
}
for (const k of ['cert', 'key', 'port', 'apns-key-pub', 'apns-key-id', 'apns-team-id'])
	if (!args[k])
		fail(`--${k} is required`);
const keyPub = crypto.createPublicKey(fs.readFileSync(args['apns-key-pub']));
const keyId = args['apns-key-id'];
const teamId = args['apns-team-id'];
const maxStreams = Number(args['max-streams'] || 1000);

function freshStats() {
	// resets: streams closed with RST_STREAM, by error code and whether they
	// had been answered (either side's reset: Node does not say which)
	// messages: the sum of the pushes' "count" (messages each stands for)
	return {requests: 0, ok: 0, messages: 0, rejected: 0, sessions: 0, goaways: 0, resets: {}};
}
let stats = freshStats();
let mode = 'ok';
let held = new Set();
const jwtCache = new Map(); // JWT -> null (good) or why it is bad

function b64url(s) {
	return /^[A-Za-z0-9_-]*$/.test(s) ? Buffer.from(s, 'base64url') : null;
}

function jwtProblem(auth) {
	const m = /^bearer (.+)$/i.exec(auth || '');
	if (!m)
		return 'MissingProviderToken';
	const jwt = m[1];
	let bad = jwtCache.get(jwt);
	if (bad !== undefined)
		return bad;
	bad = 'InvalidProviderToken';
	try {
		const [h, c, s] = jwt.split('.');
		const header = JSON.parse(b64url(h));
		const claims = JSON.parse(b64url(c));
		const sig = b64url(s);
		const now = Date.now() / 1000;
		if (header.alg === 'ES256' && header.kid === keyId && claims.iss === teamId &&
		    Number.isInteger(claims.iat) && claims.iat <= now + 60 && claims.iat > now - 3600 &&
		    sig && sig.length === 64 &&
		    crypto.verify('sha256', Buffer.from(`${h}.${c}`),
		                  {key: keyPub, dsaEncoding: 'ieee-p1363'}, sig))
			bad = null;
	} catch (e) { /* bad stays */ }
	jwtCache.set(jwt, bad);
	return bad;
}

function verify(headers, body) {
	if (headers[':method'] !== 'POST')
		return [405, 'MethodNotAllowed'];
	if (!/^\/3\/device\/[^/?]+$/.test(headers[':path']))
		return [404, 'BadPath'];
	const bad = jwtProblem(headers.authorization);
	if (bad)
		return [403, bad];
	if (!headers['apns-topic'])
		return [400, 'MissingTopic'];
	if (headers['apns-push-type'] !== 'alert')
		return [400, 'InvalidPushType'];
	if (body.length === 0 || body.length > 4096)
		return [400, 'PayloadEmpty'];
	let j;
	try {
		j = JSON.parse(body);
	} catch (e) {
		return [400, 'BadPayload'];
	}
	if (!j || !j.aps || typeof j.aps.alert !== 'object' || !Number.isInteger(j.aps.badge))
		return [400, 'BadPayload'];
	stats.messages += Number.isInteger(j.count) ? j.count : 1;
	return null;
}

function respond(stream, status, reason) {
	if (stream.destroyed || stream.closed)
		return;
	try {
		if (reason) {
			const b = JSON.stringify({reason});
			stream.respond({':status': status, 'content-type': 'application/json',
			                'content-length': String(Buffer.byteLength(b))});
			stream.end(b);
		} else {
			// With a body and its content-length: under libcurl's load, Node 18/20
			// answered with headers only (or without content-length) and after
			// about a thousand streams sent GOAWAY INTERNAL_ERROR, a fault of the
			// fake's, not of APNs or the client.
			stream.respond({':status': 200, 'apns-id': crypto.randomUUID(),
			                'content-type': 'application/json', 'content-length': '2'});
			stream.end('{}');
		}
	} catch (e) { /* the peer reset the stream */ }
}

const server = http2.createSecureServer({
	cert: fs.readFileSync(args.cert),
	key: fs.readFileSync(args.key),
	// APNs allows up to 1,000 concurrent streams; the session memory default
	// (10 MB) is too small for that many at once.
	maxSessionMemory: 512,
	settings: {maxConcurrentStreams: maxStreams},
});
server.on('secureConnection', () => { stats.sessions++; });
server.on('session', (s) => {
	s.on('error', () => {});
	s.on('goaway', () => { stats.goaways++; });
});
server.on('sessionError', () => {});
server.on('stream', (stream, headers) => {
	const chunks = [];
	stream.on('error', () => {});
	stream.on('close', () => {
		if (stream.rstCode) {
			const k = `${stream.rstCode}${stream.headersSent ? '_answered' : '_unanswered'}`;
			stats.resets[k] = (stats.resets[k] || 0) + 1;
		}
	});
	stream.on('data', (c) => chunks.push(c));
	stream.on('end', () => {
		stats.requests++;
		if (mode === 'stall') {
			held.add(stream);
			stream.on('close', () => held.delete(stream));
			return;
		}
		const bad = verify(headers, Buffer.concat(chunks).toString('utf8'));
		if (bad) {
			stats.rejected++;
			respond(stream, bad[0], bad[1]);
		} else {
			stats.ok++;
			respond(stream, 200, null);
		}
	});
});

function release() {
	for (const s of held) {
		try {
			s.close(http2.constants.NGHTTP2_CANCEL);
		} catch (e) { /* gone */ }
	}
	held = new Set();
}

const control = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		let out = null, status = 200;
		if (req.method === 'GET' && req.url === '/stats') {
			out = Object.assign({}, stats, {stalled: held.size, mode});
		} else if (req.method === 'POST' && req.url === '/mode') {
			let m = {};
			try {
				m = JSON.parse(Buffer.concat(chunks).toString('utf8'));
			} catch (e) { /* m stays empty */ }
			if (m.mode === 'ok' || m.mode === 'stall') {
				release();
				mode = m.mode;
				out = {mode};
			} else {
				status = 400;
				out = {error: `mode is ok or stall, not ${m.mode}`};
			}
		} else if (req.method === 'POST' && req.url === '/reset') {
			release();
			mode = 'ok';
			stats = freshStats();
			out = {ok: true};
		} else {
			status = 404;
			out = {error: `no ${req.method} ${req.url}`};
		}
		const b = JSON.stringify(out);
		res.writeHead(status, {'content-type': 'application/json',
		                       'content-length': Buffer.byteLength(b)});
		res.end(b);
	});
});

server.listen(Number(args.port), '127.0.0.1', () => {
	control.listen(0, '127.0.0.1', () => {
		process.stdout.write(JSON.stringify({port: server.address().port,
		                                     control: control.address().port}) + '\n');
	});
});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
