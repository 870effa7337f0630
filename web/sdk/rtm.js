// rtm.js: the browser SDK for rtm. One ES module, no build step, no deps.
//
// One RtmClient owns one WebSocket to the broker and keeps it alive: it asks
// the application's token provider for a token before every connect and
// reconnect (in the first frame after `?auth=message` when the broker offers
// it, else in `?token=`: see tokenTransport), reconnects with capped, jittered backoff,
// replays subscriptions and reconciles member lists so the application only
// sees real joins and leaves. The token never appears in an error message or
// a log line this module produces.
//
// Protocol extensions (docs/EXTENSIONS.md) are asked for by default (`&ext=1`):
// the token is renewed in-band before it expires (`refresh`, answered with the
// new expiry and fresh iceServers: the `iceServers` event), a dropped
// connection comes back with `&resume=<sessionId>` and, when the broker still
// held the place, keeps its member lists and subscriptions untouched (the
// broker replays the gap's directs and presence deltas, applied as usual), and
// each `direct` carries a per-sender `seq` whose jumps are reported as `gap`.
//
//   import { RtmClient } from '/sdk/rtm.js';
//   const rtm = new RtmClient({ url: 'ws://127.0.0.1:8080', token: () => fetchToken() });
//   rtm.on('connected', (w) => console.log(w.peerId, w.iceServers));
//   await rtm.connect();
//   await rtm.subscribe('room-42');
//   await rtm.publish('room-42', { hello: 'world' });

export const CLOSE = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, CLIENT_TIMEOUT: 4000, UNAUTHORIZED: 4001,
  TOKEN_EXPIRED: 4002, ORIGIN: 4003, REPLACED: 4009, OVER_CAPACITY: 4010,
  RATE: 4011, KEY_REVOKED: 4012, KICKED: 4020,
});

// Close codes after which reconnecting cannot help (same set as sdk-c).
const TERMINAL = new Set([CLOSE.UNAUTHORIZED, CLOSE.ORIGIN, CLOSE.KEY_REVOKED, CLOSE.KICKED]);

const DEFAULTS = {
  pingIntervalMs: 20000,
  inactivityTimeoutMs: 60000,
  requestTimeoutMs: 10000,
  backoffInitialMs: 500,
  backoffMaxMs: 30000,
  backoffJitter: 0.2,
  overCapacityWaitMs: 30000,
  reconcileGraceMs: 3000,
  maxQueued: 256,
  connectTimeoutMs: 15000,
  // Where the token travels. 'auto' (the default): 'message' when the broker
  // lists it at GET /.well-known/rtm (asked once per client), else 'query'.
  // 'message': the socket opens with ?auth=message and its first frame is
  // {"type":"auth","token":...}, so the token is in no URL a proxy, a load
  // balancer or the browser's console might show. 'query' (?token=) works
  // with every rtm broker. 'subprotocol' offers `token.<jwt>` beside `rtm.v1`,
  // but libwebsockets 4.1.6 refuses any Sec-WebSocket-Protocol header over
  // 127 bytes (a JWT always is), so it needs a broker or proxy that accepts
  // long protocol lists.
  tokenTransport: 'auto',
  probe: true,          // see _open(): check the host answers before opening the socket
  probeTimeoutMs: 5000,
  extensions: true,     // ask for refresh, resume and seq (&ext=1)
  // Refresh this long before expiresAt if the broker's token_expiring has not
  // come first (it normally does, token-expiring-notice-sec before expiry).
  refreshBeforeExpiryMs: 60000,
  refreshRetryMs: 5000, // after a refresh that failed for a transient reason
};

// Refresh attempts per token (per expiresAt): a provider that keeps handing
// out a token the broker refuses, or the same token again, cannot make the
// client loop; past this the 4002 close and a reconnect take over.
const REFRESH_TRIES_MAX = 3;
// Senders whose last seq is remembered; past this the least recently heard is
// forgotten, and a later jump from a forgotten sender is not reported.
const SEQ_SENDERS_MAX = 4096;
// setTimeout's largest delay (about 24.8 days); longer waits are re-armed.
const TIMER_MAX_MS = 2 ** 31 - 1;

// An error from the broker (code is the wire code, e.g. 'channel_not_authorized')
// or from the SDK ('timeout', 'disconnected', 'closed', 'queue_full', 'not_connected').
export class RtmError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'RtmError';
    this.code = code;
  }
}

// Removes anything that looks like a JWT or a token= argument from a string
// before it can reach an error message or a log line.
export function redact(s) {
  return String(s)
    .replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g, '[token]')
    .replace(/(token[.=])[^\s&,'"]+/gi, '$1[redacted]');
}

// A minimal event emitter: on/off/once, listeners called synchronously, a
// throwing listener is reported (redacted) and does not stop the others.
export class Emitter {
  constructor() { this._l = new Map(); }
  on(ev, fn) {
    if (!this._l.has(ev)) this._l.set(ev, new Set());
    this._l.get(ev).add(fn);
    return () => this.off(ev, fn);
  }
  off(ev, fn) { this._l.get(ev)?.delete(fn); }
  once(ev, fn) { const off = this.on(ev, (x) => { off(); fn(x); }); return off; }
  emit(ev, arg) {
    for (const fn of [...(this._l.get(ev) || [])]) {
      try { fn(arg); } catch (e) { console.error(`rtm: ${ev} listener threw: ${redact(e && e.message)}`); }
    }
  }
}

function withArg(url, name, value) {
  return url + (url.includes('?') ? '&' : '?') + name + '=' + encodeURIComponent(value);
}

function toWsUrl(url) {
  const u = new URL(url, typeof location !== 'undefined' ? location.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1';
  for (const k of ['token', 'key', 'ext', 'resume']) u.searchParams.delete(k);
  return u.toString();
}

// The member list of one channel: Map peerId -> metadata (or undefined).
// `pendingLeave` holds peers missing from a post-reconnect snapshot for
// reconcileGraceMs: if they come back in that time the app sees nothing.
class Channel {
  constructor(name, opts) {
    this.name = name;
    this.opts = opts;           // { includeSenderMetadata }
    this.members = new Map();
    this.pendingLeave = new Map(); // peerId -> timer
    this.awaitSnapshot = false; // next presence frame replaces the list
    this.snapshotTimer = null;
    this.subscribed = false;    // acknowledged on the current connection
    this.reconciling = false;   // the awaited snapshot follows a reconnect
    this.unsure = false;        // a (re)subscribe was lost with its connection: the broker may not have it
  }
}

export class RtmClient extends Emitter {
  // opts: { url, token: string | () => string|Promise<string>, WebSocket?, ...DEFAULTS }
  constructor(opts) {
    super();
    if (!opts || !opts.url) throw new RtmError('invalid_argument', 'url is required');
    if (!opts.token) throw new RtmError('invalid_argument', 'token or token provider is required');
    this.opts = { ...DEFAULTS, ...opts };
    this.url = toWsUrl(opts.url);
    this.state = 'idle'; // idle | connecting | open | waiting | closed
    this.peerId = null;
    this.welcome = null;
    this.iceServers = [];
    this.expiresAt = null;     // unix seconds of the token in force (null: a publishable key's session)
    this.metadata = {};        // the token in force's metadata (welcome, then each refresh)
    this.sessionId = null;     // extension sessions: the place a resume asks for
    this._ext = false;         // the current session speaks the extensions
    this._resumeWindowMs = 0;
    this._skewMs = 0;          // broker clock minus ours, from the welcome's serverTime
    this._refreshTimer = null;
    this._refreshing = false;
    this._refreshFor = null;   // the expiresAt the refresh tries below count for
    this._refreshTries = 0;
    this._lastSeq = new Map(); // sender peerId -> last seq seen in this session (LRU order)
    this._seqForgot = false;   // a sender was evicted from _lastSeq in this session
    this._ws = null;
    this._seq = 0;
    this._pending = new Map(); // requestId -> {resolve, reject, timer}
    this._queue = [];          // frames waiting for a connection: {frame, requestId?}
    this._channels = new Map();
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._idleTimer = null;
    this._connectTimer = null;
    this._nextDelay = null;    // forced delay for the next reconnect (4002, 4010, going_away)
    this._connects = 0;        // welcomes received, so `reconnect` can be reported
    this._firstWaiters = [];
    this.tokenTransport = null; // settled before the first socket: 'message', 'query' or 'subprotocol'
  }

  // Resolves with the first welcome; rejects on a terminal close before it.
  connect() {
    if (this.state === 'closed') return Promise.reject(new RtmError('closed', 'client is closed'));
    const p = this.welcome && this.state === 'open'
      ? Promise.resolve(this._welcomeInfo(false))
      : new Promise((resolve, reject) => this._firstWaiters.push({ resolve, reject }));
    if (this.state === 'idle') this._open();
    return p;
  }

  // Closes for good: pending requests reject with 'closed', no reconnect.
  close(code = CLOSE.NORMAL, reason = 'client closed') {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.sessionId = null;
    this._clearTimers();
    clearTimeout(this._retryTimer);
    const ws = this._ws;
    this._ws = null;
    if (ws) { this._detach(ws); try { ws.close(code, reason); } catch { /* already closing */ } }
    this._failAll('closed', 'client closed');
    for (const ch of this._channels.values()) this._dropChannelTimers(ch);
    this._rejectFirst(new RtmError('closed', 'client closed'));
    this.emit('close', { code, reason, terminal: true, willReconnect: false });
  }

  subscribe(channel, opts = {}) {
    let ch = this._channels.get(channel);
    if (!ch) { ch = new Channel(channel, { includeSenderMetadata: !!opts.includeSenderMetadata }); this._channels.set(channel, ch); }
    ch.opts.includeSenderMetadata = !!opts.includeSenderMetadata;
    const frame = { type: 'subscribe', channel };
    if (ch.opts.includeSenderMetadata) frame.includeSenderMetadata = true;
    // The broker answers every subscribe (repeated ones too) with its ack and
    // then, in the same loop turn, a snapshot: the next presence frame.
    ch.awaitSnapshot = true;
    return this._request(frame).then((r) => { ch.subscribed = true; this._armSnapshotTimer(ch); return r; },
      (e) => { if (this._channels.get(channel) === ch && !ch.subscribed) { this._dropChannelTimers(ch); this._channels.delete(channel); } throw e; });
  }

  unsubscribe(channel) {
    const ch = this._channels.get(channel);
    if (ch) { this._dropChannelTimers(ch); this._channels.delete(channel); }
    return this._request({ type: 'unsubscribe', channel });
  }

  publish(channel, data) { return this._request({ type: 'publish', channel, data }); }

  send(to, data) { return this._request({ type: 'send', to, data }); }

  // Current members of a subscribed channel (other peers): [{peerId, metadata}].
  members(channel) {
    const ch = this._channels.get(channel);
    if (!ch) return [];
    return [...ch.members].map(([peerId, metadata]) => ({ peerId, metadata }));
  }

  channels() { return [...this._channels.keys()]; }

  // ---- connection lifecycle ----

  async _open() {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    this.emit('connecting', { attempt: this._attempt });
    let token;
    try {
      const t = this.opts.token;
      token = typeof t === 'function' ? await t() : t;
      if (typeof token !== 'string' || token.length === 0) throw new Error('token provider returned no token');
    } catch (e) {
      if (this.state === 'closed') return;
      this.emit('error', new RtmError('token_provider', 'token provider failed: ' + redact(e && e.message)));
      this._scheduleReconnect({ code: 0, reason: 'token provider failed' });
      return;
    }
    if (this.state === 'closed') return;
    // A WebSocket to a host that is down makes the browser print the socket's
    // URL in the console, and with tokenTransport 'query' that URL holds the
    // token. A plain request first (it carries nothing secret) finds out; in
    // 'auto' mode that request is the one that reads the broker's capabilities.
    let transport = this.opts.tokenTransport;
    if (transport === 'auto') {
      const reachable = this.tokenTransport || typeof fetch !== 'function' ? true : await this._capabilities();
      if (this.state === 'closed') return;
      if (!reachable && this.opts.probe) {
        this._scheduleReconnect({ code: 1006, reason: 'broker unreachable' });
        return;
      }
      transport = this.tokenTransport || 'query';
    } else if (this.opts.probe && typeof fetch === 'function' && !(await this._probe())) {
      if (this.state === 'closed') return;
      this._scheduleReconnect({ code: 1006, reason: 'broker unreachable' });
      return;
    } else {
      this.tokenTransport = transport;
    }
    if (this.state === 'closed') return;
    const WS = this.opts.WebSocket || globalThis.WebSocket;
    let url = this.url;
    if (this.opts.extensions) {
      url = withArg(url, 'ext', '1');
      // Harmless when the place is gone: the broker then starts a new session.
      if (this.sessionId && this._resumeWindowMs > 0) url = withArg(url, 'resume', this.sessionId);
    }
    let ws;
    try {
      if (transport === 'message') {
        // docs/EXTENSIONS.md: nothing but this frame is sent before the welcome
        let first = JSON.stringify({ type: 'auth', token });
        ws = new WS(withArg(url, 'auth', 'message'), ['rtm.v1']);
        ws.onopen = () => {
          const f = first;
          first = null;
          if (this._ws === ws && f) ws.send(f);
        };
      } else {
        ws = transport === 'subprotocol'
          ? new WS(url, ['rtm.v1', 'token.' + token])
          : new WS(withArg(url, 'token', token), ['rtm.v1']);
      }
    } catch (e) {
      this.emit('error', new RtmError('connect_failed', 'cannot open WebSocket: ' + redact(e && e.message)));
      this._scheduleReconnect({ code: 0, reason: 'cannot open WebSocket' });
      return;
    }
    token = null;
    this._ws = ws;
    this._gotWelcome = false;
    ws.onmessage = (ev) => this._onFrame(ws, ev);
    ws.onclose = (ev) => this._onClose(ws, ev.code, ev.reason);
    ws.onerror = () => { /* the close event follows with the code */ };
    this._connectTimer = setTimeout(() => {
      if (this._ws === ws && !this._gotWelcome) this._abort(ws, CLOSE.CLIENT_TIMEOUT, 'no welcome in time');
    }, this.opts.connectTimeoutMs);
    this._touch(ws);
  }

  // 'auto': reads GET /.well-known/rtm (public, CORS *) once and settles
  // this.tokenTransport ('message' when listed, else 'query'). True when the
  // host answered at all; a broker without the document (404, no CORS
  // header) answers the plain probe and gets 'query'.
  async _capabilities() {
    const u = new URL(this.url);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = '/.well-known/rtm';
    u.search = '';
    const ac = typeof AbortController === 'function' ? new AbortController() : null;
    const t = setTimeout(() => ac && ac.abort(), this.opts.probeTimeoutMs);
    try {
      const r = await fetch(u.toString(), { cache: 'no-store', credentials: 'omit', signal: ac ? ac.signal : undefined });
      let caps = null;
      try { caps = r.ok ? await r.json() : null; } catch { caps = null; }
      const list = caps && Array.isArray(caps.tokenTransports) ? caps.tokenTransports : [];
      this.tokenTransport = list.includes('message') ? 'message' : 'query';
      return true;
    } catch {
      if (!(await this._probe())) return false;
      this.tokenTransport = 'query';
      return true;
    } finally {
      clearTimeout(t);
    }
  }

  // True when the broker's host answers HTTP at all (any status will do).
  async _probe() {
    const u = new URL(this.url);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.search = '';
    const ac = typeof AbortController === 'function' ? new AbortController() : null;
    const t = setTimeout(() => ac && ac.abort(), this.opts.probeTimeoutMs);
    try {
      await fetch(u.toString(), { mode: 'no-cors', cache: 'no-store', credentials: 'omit', signal: ac ? ac.signal : undefined });
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(t);
    }
  }

  _detach(ws) { ws.onmessage = ws.onclose = ws.onerror = null; }

  // Gives up on a socket without waiting for the close handshake (a dead
  // network may never deliver it) and goes straight to the reconnect path.
  _abort(ws, code, reason) {
    this._detach(ws);
    try { ws.close(code, reason); } catch { /* ignore */ }
    this._onClose(ws, code, reason);
  }

  _touch(ws) {
    clearTimeout(this._idleTimer);
    this._idleTimer = setTimeout(() => {
      if (this._ws === ws) this._abort(ws, CLOSE.CLIENT_TIMEOUT, 'inactivity timeout');
    }, this.opts.inactivityTimeoutMs);
  }

  _clearTimers() {
    clearTimeout(this._idleTimer); clearInterval(this._pingTimer); clearTimeout(this._connectTimer);
    clearTimeout(this._refreshTimer);
    this._idleTimer = this._pingTimer = this._connectTimer = this._refreshTimer = null;
  }

  _onFrame(ws, ev) {
    if (this._ws !== ws) return;
    this._touch(ws);
    if (typeof ev.data !== 'string') return;
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'welcome': return this._onWelcome(ws, f);
      case 'ack': return this._settle(f.requestId, null, f);
      case 'error': {
        const err = new RtmError(f.code || 'error', redact(f.message || f.code || 'error'));
        if (f.requestId && this._pending.has(f.requestId)) return this._settle(f.requestId, err);
        return this.emit('error', err);
      }
      case 'presence': return this._onPresence(f);
      case 'message': return this.emit('message', { channel: f.channel, from: f.from, data: f.data, fromMetadata: f.fromMetadata });
      case 'direct':
        if (this._ext && Number.isInteger(f.seq) && typeof f.from === 'string') this._checkSeq(f.from, f.seq);
        return this.emit('direct', { from: f.from, data: f.data, fromMetadata: f.fromMetadata, seq: f.seq });
      case 'token_expiring':
        if (!this._ext) return undefined;
        // A notice for a token a refresh has already replaced is stale.
        if (Number.isFinite(f.expiresAt) && this.expiresAt !== null && f.expiresAt < this.expiresAt) return undefined;
        if (Number.isFinite(f.expiresAt)) this.expiresAt = f.expiresAt;
        this.emit('expiring', { expiresAt: this.expiresAt });
        return this._maybeRefresh();
      case 'unsubscribed': return this._ext ? this._onUnsubscribed(f) : undefined;
      case 'pong': return undefined;
      case 'going_away':
        if (Number.isFinite(f.retryAfterMs)) this._nextDelay = Math.max(0, f.retryAfterMs);
        return undefined;
      default: return undefined; // frames from newer brokers are ignored
    }
  }

  _welcomeInfo(reconnect) {
    const w = this.welcome;
    return {
      peerId: w.peerId, expiresAt: this.expiresAt, serverTime: w.serverTime,
      maxMessageSize: w.maxMessageSize, metadata: this.metadata, iceServers: this.iceServers, reconnect,
      sessionId: this.sessionId, resumed: this._ext && w.resumed === true,
    };
  }

  _onWelcome(ws, f) {
    clearTimeout(this._connectTimer);
    this._gotWelcome = true;
    const reconnect = this._connects > 0;
    this._connects++;
    this._attempt = 0;
    this._nextDelay = null;
    this.state = 'open';
    this.welcome = f;
    this.peerId = f.peerId;
    this.expiresAt = Number.isFinite(f.expiresAt) ? f.expiresAt : null;
    this.metadata = f.metadata && typeof f.metadata === 'object' ? f.metadata : {};
    const ice = Array.isArray(this.metadata.iceServers) ? this.metadata.iceServers : [];
    this.iceServers = ice;
    if (Number.isFinite(f.serverTime)) this._skewMs = f.serverTime - Date.now();
    // An extension welcome carries sessionId; a broker without the extensions
    // ignores &ext=1 and the client then speaks the core protocol only.
    this._ext = !!this.opts.extensions && typeof f.sessionId === 'string' && f.sessionId.length > 0;
    this.sessionId = this._ext ? f.sessionId : null;
    this._resumeWindowMs = this._ext && Number.isFinite(f.resumeWindowMs) ? f.resumeWindowMs : 0;
    const resumed = this._ext && f.resumed === true;
    this._refreshFor = null;
    this._refreshTries = 0;
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => { if (this._ws === ws) this._raw({ type: 'ping' }); }, this.opts.pingIntervalMs);
    if (resumed) {
      // The broker kept the session: subscriptions, member lists and seq
      // counters carry on. Only a subscribe that was lost in flight is redone.
      for (const ch of this._channels.values()) {
        if (ch.subscribed && ch.unsure) this._resubscribe(ch);
      }
      // The held queue lost presence frames: the broker sends each channel's
      // whole member list next; it replaces ours at once (who left during
      // the gap is gone, no grace: the gap is over).
      if (f.presenceReset === true) {
        for (const ch of this._channels.values()) {
          if (!ch.subscribed || ch.unsure) continue;
          ch.awaitSnapshot = true;
          ch.reconciling = false;
          this._armSnapshotTimer(ch);
        }
      }
    } else {
      // A new session: seq counts from 1 again; replay subscriptions first,
      // so member lists are back before queued work.
      this._lastSeq.clear();
      this._seqForgot = false;
      for (const ch of this._channels.values()) {
        if (ch.subscribed) this._resubscribe(ch);
      }
    }
    this._armRefresh();
    const q = this._queue.splice(0);
    for (const item of q) this._raw(item.frame);
    const info = this._welcomeInfo(reconnect);
    this.emit('connected', info);
    const waiters = this._firstWaiters.splice(0);
    for (const w of waiters) w.resolve(info);
  }

  _resubscribe(ch) {
    ch.subscribed = false;
    ch.awaitSnapshot = true;
    ch.reconciling = true;
    ch.unsure = false;
    const frame = { type: 'subscribe', channel: ch.name };
    if (ch.opts.includeSenderMetadata) frame.includeSenderMetadata = true;
    this._request(frame).then(() => { ch.subscribed = true; this._armSnapshotTimer(ch); }, (e) => {
      // Retried on the next welcome (a resumed one too: the broker may never have seen it).
      if (e.code === 'disconnected' || e.code === 'closed') { ch.subscribed = true; ch.unsure = true; return; }
      // The new token no longer allows this channel: everyone in it is gone for us.
      this._dropChannelTimers(ch);
      this._channels.delete(ch.name);
      const left = [...ch.members.keys()].map((peerId) => ({ peerId }));
      if (left.length) this.emit('presence', { channel: ch.name, joined: [], left, members: [] });
      this.emit('error', new RtmError(e.code, `resubscribe to ${ch.name} failed: ${e.message}`));
    });
  }

  // A refresh or resume with a narrower token ended these subscriptions:
  // they leave our lists (everyone in them is gone for us) and are not
  // subscribed again on a reconnect.
  _onUnsubscribed(f) {
    const names = Array.isArray(f.channels) ? f.channels.filter((c) => typeof c === 'string') : [];
    const ended = [];
    for (const name of names) {
      const ch = this._channels.get(name);
      if (!ch) continue;
      this._dropChannelTimers(ch);
      this._channels.delete(name);
      ended.push(name);
      const left = [...ch.members.keys()].map((peerId) => ({ peerId }));
      if (left.length) this.emit('presence', { channel: name, joined: [], left, members: [] });
    }
    if (ended.length) this.emit('unsubscribed', { channels: ended });
  }

  // The snapshot follows the subscribe's ack in the same turn. If the broker
  // sends none (no other member, or no presence permission) the list is empty.
  _armSnapshotTimer(ch) {
    clearTimeout(ch.snapshotTimer);
    if (!ch.awaitSnapshot) return;
    ch.snapshotTimer = setTimeout(() => {
      if (ch.awaitSnapshot) this._applySnapshot(ch, []);
    }, 500);
  }

  _dropChannelTimers(ch) {
    clearTimeout(ch.snapshotTimer);
    for (const t of ch.pendingLeave.values()) clearTimeout(t);
    ch.pendingLeave.clear();
  }

  _onPresence(f) {
    const ch = this._channels.get(f.channel);
    if (!ch) return;
    const joined = Array.isArray(f.joined) ? f.joined.filter((p) => p && p.peerId !== this.peerId) : [];
    const left = Array.isArray(f.left) ? f.left.filter((p) => p && p.peerId !== this.peerId) : [];
    if (ch.awaitSnapshot) {
      this._applySnapshot(ch, joined);
      if (left.length) this._applyDelta(ch, [], left);
      return;
    }
    this._applyDelta(ch, joined, left);
  }

  _applySnapshot(ch, list) {
    ch.awaitSnapshot = false;
    clearTimeout(ch.snapshotTimer);
    const now = new Map(list.map((p) => [p.peerId, p.metadata]));
    const joined = [];
    for (const [peerId, metadata] of now) {
      if (ch.pendingLeave.has(peerId)) { clearTimeout(ch.pendingLeave.get(peerId)); ch.pendingLeave.delete(peerId); }
      if (!ch.members.has(peerId)) joined.push({ peerId, metadata });
      ch.members.set(peerId, metadata);
    }
    const reconciling = ch.reconciling;
    ch.reconciling = false;
    const left = [];
    for (const peerId of [...ch.members.keys()]) {
      if (now.has(peerId) || ch.pendingLeave.has(peerId)) continue;
      if (!reconciling) { ch.members.delete(peerId); left.push({ peerId }); continue; }
      // Peers missing after a reconnect may simply not be back yet: give them a grace.
      const t = setTimeout(() => {
        ch.pendingLeave.delete(peerId);
        if (this._channels.get(ch.name) !== ch || !ch.members.has(peerId)) return;
        ch.members.delete(peerId);
        this.emit('presence', { channel: ch.name, joined: [], left: [{ peerId }], members: this.members(ch.name) });
      }, this.opts.reconcileGraceMs);
      ch.pendingLeave.set(peerId, t);
    }
    if (joined.length || left.length) this.emit('presence', { channel: ch.name, joined, left, members: this.members(ch.name) });
    this.emit('sync', { channel: ch.name, members: this.members(ch.name), returning: [...ch.pendingLeave.keys()] });
  }

  _applyDelta(ch, joinedIn, leftIn) {
    const joined = [];
    const left = [];
    let returned = false;
    for (const p of joinedIn) {
      if (ch.pendingLeave.has(p.peerId)) {
        clearTimeout(ch.pendingLeave.get(p.peerId));
        ch.pendingLeave.delete(p.peerId);
        ch.members.set(p.peerId, p.metadata);
        returned = true;
        continue; // came back within the grace: not a real join
      }
      if (!ch.members.has(p.peerId)) joined.push({ peerId: p.peerId, metadata: p.metadata });
      ch.members.set(p.peerId, p.metadata);
    }
    for (const p of leftIn) {
      if (ch.pendingLeave.has(p.peerId)) { clearTimeout(ch.pendingLeave.get(p.peerId)); ch.pendingLeave.delete(p.peerId); }
      if (ch.members.delete(p.peerId)) left.push({ peerId: p.peerId });
    }
    if (joined.length || left.length) this.emit('presence', { channel: ch.name, joined, left, members: this.members(ch.name) });
    // Not news for the application, but proof the peer is reachable again (the call helper restarts ICE on it).
    if (returned) this.emit('sync', { channel: ch.name, members: this.members(ch.name), returning: [...ch.pendingLeave.keys()] });
  }

  _onClose(ws, code, reason) {
    if (this._ws !== ws) return;
    this._ws = null;
    this._detach(ws);
    this._clearTimers();
    // Replies to in-flight requests will never come: fail them now (exactly once).
    this._failAll('disconnected', 'connection lost');
    for (const ch of this._channels.values()) { clearTimeout(ch.snapshotTimer); ch.awaitSnapshot = false; }
    if (this.state === 'closed') return;
    reason = redact(reason || '');
    if (TERMINAL.has(code)) {
      this.state = 'closed';
      this.sessionId = null;
      clearTimeout(this._retryTimer);
      for (const ch of this._channels.values()) this._dropChannelTimers(ch);
      this._failQueue('closed', `closed by broker: ${code} ${reason}`);
      this._rejectFirst(new RtmError('closed', `closed by broker: ${code} ${reason}`.trim()));
      this.emit('close', { code, reason, terminal: true, willReconnect: false });
      return;
    }
    this._scheduleReconnect({ code, reason });
  }

  _scheduleReconnect({ code, reason }) {
    this.state = 'waiting';
    const o = this.opts;
    let delay;
    if (code === CLOSE.TOKEN_EXPIRED) {
      delay = 0; // the provider is asked for a fresh token right away
    } else {
      const base = Math.min(o.backoffMaxMs, o.backoffInitialMs * 2 ** this._attempt);
      delay = base * (1 + o.backoffJitter * (2 * Math.random() - 1));
      if (this._nextDelay !== null) delay = this._nextDelay * (1 + o.backoffJitter * Math.random());
      if (code === CLOSE.OVER_CAPACITY) delay = Math.max(delay, o.overCapacityWaitMs);
      this._attempt++;
    }
    this._nextDelay = null;
    delay = Math.round(delay);
    this.emit('close', { code, reason, terminal: false, willReconnect: true, retryInMs: delay });
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => { this._retryTimer = null; this._open(); }, delay);
  }

  _rejectFirst(err) {
    for (const w of this._firstWaiters.splice(0)) w.reject(err);
  }

  // ---- extensions: refresh and seq ----

  // Arms the fallback refresh for the token in force: refreshBeforeExpiryMs
  // before expiresAt (by the broker's clock), at once if that has passed.
  _armRefresh() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!this._refreshable()) return;
    const dueMs = this.expiresAt * 1000 - this._skewMs - this.opts.refreshBeforeExpiryMs;
    const delay = Math.max(0, dueMs - Date.now());
    const ws = this._ws;
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      if (this._ws !== ws) return;
      if (delay > TIMER_MAX_MS) this._armRefresh(); else this._maybeRefresh();
    }, Math.min(delay, TIMER_MAX_MS));
  }

  // A fixed token string cannot be renewed: such a client relies on 4002 and
  // a reconnect (which fails without a provider, as before).
  _refreshable() {
    return this._ext && this.state === 'open' && this.expiresAt !== null && typeof this.opts.token === 'function';
  }

  // Starts a refresh unless one is in flight or this token's tries are spent.
  _maybeRefresh() {
    if (this._refreshing || !this._refreshable()) return;
    if (this._refreshFor !== this.expiresAt) { this._refreshFor = this.expiresAt; this._refreshTries = 0; }
    if (this._refreshTries >= REFRESH_TRIES_MAX) return;
    this._refreshTries++;
    this._refresh();
  }

  async _refresh() {
    const ws = this._ws;
    this._refreshing = true;
    let transient = false;
    try {
      let token;
      try {
        token = await this.opts.token();
        if (typeof token !== 'string' || token.length === 0) throw new Error('token provider returned no token');
      } catch (e) {
        transient = true;
        this.emit('error', new RtmError('token_provider', 'token provider failed: ' + redact(e && e.message)));
        return;
      }
      // Reconnected meanwhile: that welcome already came with a fresh token.
      if (this._ws !== ws || this.state !== 'open') return;
      const ack = await this._call({ type: 'refresh', token });
      token = null;
      if (this._ws === ws) this._onRefreshed(ack);
    } catch (e) {
      if (e.code === 'timeout') transient = true;
      else if (e.code !== 'disconnected' && e.code !== 'closed') {
        // Refused: the session stays as it was. Asking the provider again
        // would most likely be refused again; 4002 and a reconnect follow.
        this._refreshTries = REFRESH_TRIES_MAX;
        this.emit('error', new RtmError(e.code, 'refresh refused: ' + redact(e.message)));
      }
    } finally {
      this._refreshing = false;
      if (transient && this._ws === ws) this._retryRefresh();
    }
  }

  // One more try after refreshRetryMs, if the token has that much life left.
  _retryRefresh() {
    if (this.expiresAt === null) return;
    const leftMs = this.expiresAt * 1000 - this._skewMs - Date.now();
    if (leftMs <= this.opts.refreshRetryMs) return;
    clearTimeout(this._refreshTimer);
    const ws = this._ws;
    this._refreshTimer = setTimeout(() => {
      this._refreshTimer = null;
      if (this._ws === ws) this._maybeRefresh();
    }, this.opts.refreshRetryMs);
  }

  _onRefreshed(ack) {
    if (Number.isFinite(ack.expiresAt)) this.expiresAt = ack.expiresAt;
    if (ack.metadata && typeof ack.metadata === 'object') this.metadata = ack.metadata;
    const ice = Array.isArray(this.metadata.iceServers) ? this.metadata.iceServers : null;
    if (ice) this.iceServers = ice;
    this.emit('refreshed', { expiresAt: this.expiresAt, metadata: this.metadata });
    if (ice) this.emit('iceServers', { iceServers: ice, expiresAt: this.expiresAt });
    this._armRefresh();
  }

  // seq counts per sender from 1 within one broker session; a jump means the
  // messages in between were lost (dropped from a resume queue, say). A lower
  // seq is a restart (the broker restarts its counters past 4096 senders).
  _checkSeq(from, seq) {
    const known = this._lastSeq.has(from);
    const last = known ? this._lastSeq.get(from) : 0;
    if (known) this._lastSeq.delete(from); // re-inserted last: Map order is recency
    else if (this._lastSeq.size >= SEQ_SENDERS_MAX) {
      this._lastSeq.delete(this._lastSeq.keys().next().value);
      this._seqForgot = true;
    }
    this._lastSeq.set(from, seq);
    if (seq > last + 1 && (known || !this._seqForgot)) this.emit('gap', { from, expected: last + 1, got: seq });
  }

  // ---- requests ----

  // Sends a request on the open connection only (never queued for a later
  // one) and resolves with its ack; rejects like _request.
  _call(frame) {
    if (this.state !== 'open') return Promise.reject(new RtmError('disconnected', 'not connected'));
    const requestId = 'r' + (++this._seq);
    frame = { ...frame, requestId };
    return new Promise((resolve, reject) => {
      if (!this._raw(frame)) { reject(new RtmError('disconnected', 'not connected')); return; }
      const timer = setTimeout(() => {
        this._pending.delete(requestId);
        reject(new RtmError('timeout', `${frame.type} timed out`));
      }, this.opts.requestTimeoutMs);
      this._pending.set(requestId, { resolve, reject, timer });
    });
  }

  _raw(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  _request(frame) {
    if (this.state === 'closed') return Promise.reject(new RtmError('closed', 'client is closed'));
    const requestId = 'r' + (++this._seq);
    frame = { ...frame, requestId };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(requestId);
        const i = this._queue.findIndex((q) => q.requestId === requestId);
        if (i >= 0) this._queue.splice(i, 1);
        reject(new RtmError('timeout', `${frame.type} timed out`));
      }, this.opts.requestTimeoutMs);
      if (this.state === 'open' && this._raw(frame)) {
        this._pending.set(requestId, { resolve, reject, timer });
        return;
      }
      if (this._queue.length >= this.opts.maxQueued) {
        clearTimeout(timer);
        reject(new RtmError('queue_full', 'too many requests waiting for a connection'));
        return;
      }
      // Sent on the next welcome; from then on it waits for its ack like any other.
      this._pending.set(requestId, { resolve, reject, timer, queued: true });
      this._queue.push({ frame, requestId });
    });
  }

  _settle(requestId, err, frame) {
    const p = requestId && this._pending.get(requestId);
    if (!p) return;
    this._pending.delete(requestId);
    clearTimeout(p.timer);
    if (err) p.reject(err); else p.resolve(frame);
  }

  // Fails the requests already on the wire; queued ones keep waiting.
  _failAll(code, message) {
    const queued = new Set(this._queue.map((q) => q.requestId));
    for (const [id, p] of [...this._pending]) {
      if (queued.has(id) && code === 'disconnected') continue;
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new RtmError(code, message));
    }
    if (code !== 'disconnected') this._queue.length = 0;
  }

  _failQueue(code, message) {
    for (const q of this._queue.splice(0)) {
      const p = this._pending.get(q.requestId);
      if (!p) continue;
      this._pending.delete(q.requestId);
      clearTimeout(p.timer);
      p.reject(new RtmError(code, message));
    }
  }
}

