#!/usr/bin/env node
// A Node `ws` server for wsclient's integration tests.
//
// It speaks the same little path language as the Python `websockets` peer in
// tests/integration/conftest.py, so one test runs against both servers:
//
//   /echo                      echo every message with its type
//   /headers                   first send a JSON text {path, headers, protocol}, then echo
//   /close?code=C&reason=R&count=N
//                              send N text messages "message <i>", then close with C/R
//                              (no code: close without a status code, 1005 on the client)
//   /ping?data=D               send a ping carrying D right after the opening, then echo
//   /flood?count=N&size=S      send N binary messages of S bytes (4-byte big-endian index
//                              first), one after the other, then close with 1000
//
// In echo mode these text messages are commands, not echoed:
//   "pongs?"          -> JSON list of the pong payloads (hex) received on this connection
//   "pings?"          -> JSON list of the ping payloads (hex) received on this connection
//   "ping:<data>"     -> the server sends a ping carrying <data>
//   "close:<code>:<reason>" -> the server closes with that code and reason
//
// Every event is printed on stdout as one JSON line: the first is
// {"event": "listening", "port": P}; then "connection", "message", "ping",
// "pong", "close" and "error", each with the connection's "cid" (the `cid`
// query parameter the tests add to every URL).
//
// Options:
//   --host H             address to listen on (default 127.0.0.1)
//   --port P             port (default 0: any free port)
//   --cert F --key F     serve wss:// with this certificate and key (PEM files)
//   --deflate            enable permessage-deflate (off by default)
//   --protocols a,b      subprotocols the server supports, best first; it picks the
//                        first of these that the client offered, or none
//   --no-auto-pong       never answer pings (for keepalive tests)
//   --max-payload N      largest message accepted (default 64 MiB)

'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const { URL } = require('url');

let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  process.stderr.write(`cannot load the ws module: ${err.message}\n`);
  process.exit(3);
}

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 0,
    cert: null,
    key: null,
    deflate: false,
    protocols: ['superchat', 'chat'],
    autoPong: true,
    maxPayload: 64 * 1024 * 1024
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      i += 1;
      if (i >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[i];
    };
    switch (arg) {
      case '--host': opts.host = next(); break;
      case '--port': opts.port = Number(next()); break;
      case '--cert': opts.cert = next(); break;
      case '--key': opts.key = next(); break;
      case '--deflate': opts.deflate = true; break;
      case '--no-deflate': opts.deflate = false; break;
      case '--protocols': {
        const value = next();
        opts.protocols = value === '' ? [] : value.split(',');
        break;
      }
      case '--no-auto-pong': opts.autoPong = false; break;
      case '--max-payload': opts.maxPayload = Number(next()); break;
      default: throw new Error(`unknown option ${arg}`);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function log(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

const httpServer = opts.cert
  ? https.createServer({ cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) })
  : http.createServer();

httpServer.on('request', (req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('WebSocket only\n');
});

const wss = new WebSocket.Server({
  server: httpServer,
  perMessageDeflate: opts.deflate,
  autoPong: opts.autoPong,
  maxPayload: opts.maxPayload,
  handleProtocols: (offered) => {
    for (const protocol of opts.protocols) {
      if (offered.has(protocol)) return protocol;
    }
    return false;
  }
});

function hex(data) {
  return Buffer.from(data).toString('hex');
}

function closeWith(ws, params) {
  const code = params.get('code');
  if (code === null) {
    ws.close();
  } else {
    ws.close(Number(code), params.get('reason') || '');
  }
}

function flood(ws, count, size) {
  let index = 0;
  const sendNext = (err) => {
    if (err || ws.readyState !== WebSocket.OPEN) return;
    if (index >= count) {
      ws.close(1000, 'flood done');
      return;
    }
    const payload = Buffer.alloc(size, index % 251);
    payload.writeUInt32BE(index, 0);
    index += 1;
    // The callback runs once the frame is written to the socket, so the
    // server's "sends" stall when the client stops reading.
    ws.send(payload, { binary: true }, sendNext);
  };
  sendNext(null);
}

wss.on('connection', (ws, req) => {
  const url = new URL(req.url, 'http://peer');
  const params = url.searchParams;
  const cid = params.get('cid');
  const pings = [];
  const pongs = [];
  log({
    event: 'connection',
    cid,
    path: url.pathname,
    url: req.url,
    headers: req.headers,
    protocol: ws.protocol || null,
    extensions: req.headers['sec-websocket-extensions'] || null
  });

  ws.on('ping', (data) => {
    pings.push(hex(data));
    log({ event: 'ping', cid, data: hex(data) });
  });
  ws.on('pong', (data) => {
    pongs.push(hex(data));
    log({ event: 'pong', cid, data: hex(data) });
  });
  ws.on('close', (code, reason) => {
    log({ event: 'close', cid, code, reason: reason.toString('utf8') });
  });
  ws.on('error', (err) => {
    log({ event: 'error', cid, message: err.message, code: err.code || null });
  });
  ws.on('message', (data, isBinary) => {
    log({ event: 'message', cid, binary: isBinary, size: data.length });
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text === 'pongs?') {
        ws.send(JSON.stringify(pongs));
        return;
      }
      if (text === 'pings?') {
        ws.send(JSON.stringify(pings));
        return;
      }
      if (text.startsWith('ping:')) {
        ws.ping(Buffer.from(text.slice(5), 'utf8'));
        return;
      }
      if (text.startsWith('close:')) {
        const [code, ...reason] = text.slice(6).split(':');
        ws.close(Number(code), reason.join(':'));
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });

  switch (url.pathname) {
    case '/headers':
      ws.send(JSON.stringify({ path: req.url, headers: req.headers, protocol: ws.protocol || null }));
      break;
    case '/close': {
      const count = Number(params.get('count') || 0);
      for (let i = 0; i < count; i++) ws.send(`message ${i}`);
      closeWith(ws, params);
      break;
    }
    case '/ping':
      ws.ping(Buffer.from(params.get('data') || '', 'utf8'));
      break;
    case '/flood':
      flood(ws, Number(params.get('count') || 100), Number(params.get('size') || 65536));
      break;
    default:
      break;
  }
});

httpServer.listen(opts.port, opts.host, () => {
  log({ event: 'listening', port: httpServer.address().port, host: opts.host });
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// The test process holds our stdin: when it goes away, so do we.
process.stdin.on('end', shutdown);
process.stdin.resume();
