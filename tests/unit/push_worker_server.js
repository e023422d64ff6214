// SPDX-License-Identifier: Apache-2.0
//
// The HTTP/2 server test_push_worker talks to: a stand-in for a push
// provider, over TLS with a throwaway certificate. Node 18 APIs only.
//
//   node push_worker_server.js <key.pem> <cert.pem>
//
// Prints "PORT <n>" once it listens on 127.0.0.1. A POST's path says what
// to do with it:
//   /ok               200
//   /status/<n>       status n (429 carries "retry-after: 7")
//   /delay/<ms>       200 after ms
//   /stall            never answers
//   /auth             403 while the request's credentials generation
//                     ("authorization: bearer <n>") is odd, else 200
//   /auth-never       403
//   /goaway/<n>       200; the n-th such request of the server (once) is
//                     answered, then the session gets a GOAWAY naming it as
//                     the last stream: the streams after it are cut off
//   /cut/<n>          held until n of them are in; then each gets its status
//                     line and part of a body, and the connection is closed
//                     under them (once per server; afterwards 200)
// GET /stats answers {"sessions": <sessions that carried a POST>, "posts": n,
// "first": <POSTs the first of them carried>}.
'use strict';

const fs = require('fs');
const http2 = require('http2');

const [keyFile, certFile] = process.argv.slice(2);
const server = http2.createSecureServer({
	key: fs.readFileSync(keyFile),
	cert: fs.readFileSync(certFile),
	settings: {maxConcurrentStreams: 4000},
});

let postSessions = 0;
let firstSessionPosts = 0;
let firstSession = null;
let posts = 0;
let goaways = 0;
let goawaySent = false;
let cutDone = false;
let held = [];
const stalled = [];

function reply(stream, status, headers, body) {
	if (stream.destroyed || stream.closed) {
		return;
	}
	stream.respond(Object.assign({':status': status, 'content-type': 'application/json'},
	                             headers));
	stream.end(body);
}

function handle(stream, session, path, headers) {
	if (session.lastStreamId !== undefined && stream.id > session.lastStreamId) {
		return; // cut off by our GOAWAY: the client has given up on it
	}
	if (session.posts++ === 0) {
		postSessions++;
		if (firstSession === null) {
			firstSession = session;
		}
	}
	if (session === firstSession) {
		firstSessionPosts++;
	}
	posts++;
	let m;
	if (path === '/ok') {
		reply(stream, 200, {}, '{}');
	} else if ((m = /^\/status\/(\d+)$/.exec(path))) {
		const status = Number(m[1]);
		reply(stream, status, status === 429 ? {'retry-after': '7'} : {},
		      '{"reason":"status ' + status + '"}');
	} else if ((m = /^\/delay\/(\d+)$/.exec(path))) {
		setTimeout(() => reply(stream, 200, {}, '{}'), Number(m[1]));
	} else if (path === '/stall') {
		stalled.push(stream);
	} else if (path === '/auth') {
		const gen = Number((headers.authorization || '').replace(/^bearer /, ''));
		if (gen % 2 === 1) {
			reply(stream, 403, {}, '{"reason":"ExpiredProviderToken"}');
		} else {
			reply(stream, 200, {}, '{}');
		}
	} else if (path === '/auth-never') {
		reply(stream, 403, {}, '{"reason":"InvalidProviderToken"}');
	} else if ((m = /^\/goaway\/(\d+)$/.exec(path))) {
		reply(stream, 200, {}, '{}');
		if (!goawaySent && ++goaways === Number(m[1])) {
			goawaySent = true;
			session.lastStreamId = stream.id;
			session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id);
			setTimeout(() => session.destroy(), 1000);
		}
	} else if ((m = /^\/cut\/(\d+)$/.exec(path))) {
		if (cutDone) {
			reply(stream, 200, {}, '{}');
			return;
		}
		held.push(stream);
		if (held.length === Number(m[1])) {
			cutDone = true;
			for (const h of held) {
				h.respond({':status': 200, 'content-type': 'application/json'});
				h.write('{"partial');
			}
			held = [];
			// the TLS socket itself: no RST_STREAM, no GOAWAY, as if the
			// provider's host vanished mid-answer
			setTimeout(() => session.tls.destroy(), 50);
		}
	} else {
		reply(stream, 404, {}, '{"reason":"no such path"}');
	}
}

let newest = null;
server.on('session', (session) => {
	session.posts = 0;
	session.on('error', () => {});
	newest = session;
});
// Node emits 'session' from its own 'secureConnection' listener, which runs
// before this one: the socket here is the newest session's.
server.on('secureConnection', (tls) => {
	if (newest) {
		newest.tls = tls;
		newest = null;
	}
});

server.on('stream', (stream, headers) => {
	const path = headers[':path'];
	stream.on('error', () => {});
	if (headers[':method'] === 'GET' && path === '/stats') {
		reply(stream, 200, {}, JSON.stringify({sessions: postSessions, posts: posts, first: firstSessionPosts}));
		return;
	}
	stream.on('data', () => {});
	stream.on('end', () => handle(stream, stream.session, path, headers));
});

server.on('error', (e) => {
	console.error(e);
	process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
	process.stdout.write('PORT ' + server.address().port + '\n');
});
