// demo.js: the group-call demo served at / by rtmd (development only).
//
// The page fetches a token from GET /demo/token (which `make run` turns on),
// connects with the browser SDK, joins the room's channel "room-<room>" as a
// full-mesh call, and uses the same channel for presence (member list) and
// chat (publish). It keeps the first token until it is about to expire, so a
// reconnect keeps the same peerId and nobody appears twice in the grid.
// window.rtmDemo exposes the live objects for the end-to-end tests.

import { RtmClient, redact } from '/sdk/rtm.js';
import { CallMesh } from '/sdk/call.js';

const $ = (id) => document.getElementById(id);
const demo = { client: null, call: null, room: null, channel: null, name: null, stream: null,
  iceErrors: [], relay: 'unknown', events: [], trace: [] };
window.rtmDemo = demo;
window.__rtmTrace = demo.trace; // what happened, for debugging (and the tests' failure reports)
function trace(line) {
  demo.trace.push(`${(performance.now() / 1000).toFixed(2)} ${line}`);
  if (demo.trace.length > 300) demo.trace.splice(0, 100); // bounded
}

const params = new URLSearchParams(location.search);
$('name').value = params.get('name') || localStorage.getItem('rtm-demo-name') || '';
$('room').value = params.get('room') || 'lobby';

// ---- small view helpers ----

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

let bannerTimer = null;
function banner(text, kind = '', ms = 0) {
  const b = $('banner');
  clearTimeout(bannerTimer);
  if (!text) { b.hidden = true; return; }
  b.textContent = text;
  b.className = 'banner ' + kind;
  b.hidden = false;
  if (ms) bannerTimer = setTimeout(() => { b.hidden = true; }, ms);
}

function nameOf(metadata, peerId) {
  const n = metadata && typeof metadata.name === 'string' ? metadata.name : '';
  return n || (peerId ? peerId.slice(0, 10) : 'someone');
}

function sysLine(text) {
  const li = document.createElement('li');
  li.className = 'sys';
  li.textContent = text;
  addChat(li);
}

function addChat(li) {
  const log = $('chatLog');
  log.append(li);
  while (log.children.length > 200) log.firstElementChild.remove(); // bounded history
  log.scrollTop = log.scrollHeight;
}

// ---- tiles ----

function tile(peerId) { return document.querySelector(`.tile[data-peer="${CSS.escape(peerId)}"]`); }

function ensureTile(peerId, name, self = false) {
  let t = tile(peerId);
  if (t) { t.querySelector('.name').textContent = name; t.querySelector('.avatar').textContent = (name[0] || '?').toUpperCase(); return t; }
  t = $('tileTpl').content.firstElementChild.cloneNode(true);
  t.dataset.peer = peerId;
  t.classList.toggle('self', self);
  t.classList.add('no-video');
  if (!self) t.classList.add('connecting');
  t.querySelector('.name').textContent = self ? `${name} (you)` : name;
  t.querySelector('.avatar').textContent = (name[0] || '?').toUpperCase();
  const v = t.querySelector('video');
  v.muted = self;
  v.addEventListener('loadeddata', () => t.classList.remove('no-video'));
  $('grid').append(t);
  return t;
}

function removeTile(peerId) { tile(peerId)?.remove(); }

function renderMembers() {
  const ul = $('members');
  ul.textContent = '';
  const me = document.createElement('li');
  me.className = 'me';
  me.textContent = `${demo.name} (you)`;
  ul.append(me);
  const members = demo.client ? demo.client.members(demo.channel) : [];
  for (const m of members) {
    const li = document.createElement('li');
    li.dataset.peer = m.peerId;
    li.textContent = nameOf(m.metadata, m.peerId);
    ul.append(li);
  }
  $('memberCount').textContent = String(members.length + 1);
}

// ---- token ----

// The token is reused while it has more than a minute left: a reconnect then
// keeps the same peerId. It never leaves this closure except to the SDK.
function tokenProvider(room, name) {
  let cached = null;
  return async () => {
    const now = Date.now() / 1000;
    if (cached && cached.expiresAt - now > 60) return cached.token;
    // Ask for the same peerId again, so a refresh or reconnect is the same peer.
    const peer = cached ? `&peer=${encodeURIComponent(cached.peerId)}` : '';
    const r = await fetch(`/demo/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${peer}`, { cache: 'no-store' });
    let body = null;
    try { body = await r.json(); } catch { /* not JSON */ }
    if (!r.ok || !body || !body.token) {
      throw new Error(body && body.message ? body.message : `the demo token endpoint answered ${r.status}` +
        (r.status === 404 ? ' (start the daemon with `make run`, which turns it on)' : ''));
    }
    cached = body;
    return body.token;
  };
}

// ---- relay check ----

// Asks the TURN server in the welcome for a relay allocation with a throwaway
// connection, so an expired or wrong credential is reported before anyone joins.
async function checkRelay(iceServers) {
  const el = $('relay');
  const turn = iceServers.filter((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u)));
  if (!turn.length) { demo.relay = 'none'; el.textContent = 'Relay: no TURN server in the token'; return; }
  el.className = 'panel meta';
  el.textContent = 'Relay: checking…';
  const pc = new RTCPeerConnection({ iceServers: turn, iceTransportPolicy: 'relay' });
  const result = await new Promise((resolve) => {
    const t = setTimeout(() => resolve({ ok: false, text: 'no answer from the TURN server' }), 8000);
    pc.onicecandidate = (e) => { if (e.candidate && e.candidate.type === 'relay') { clearTimeout(t); resolve({ ok: true }); } };
    pc.onicecandidateerror = (e) => {
      demo.iceErrors.push({ errorCode: e.errorCode, errorText: e.errorText, url: e.url, source: 'check' });
      if (e.errorCode === 401) { clearTimeout(t); resolve({ ok: false, code: 401, text: e.errorText }); }
    };
    pc.createDataChannel('probe');
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch((e) => resolve({ ok: false, text: e.message }));
  });
  pc.close();
  if (result.ok) {
    demo.relay = 'ok';
    el.className = 'panel meta ok';
    el.textContent = 'Relay: TURN allocation works';
  } else {
    demo.relay = result.code === 401 ? 'unauthorized' : 'failed';
    el.className = 'panel meta bad';
    el.textContent = `Relay: ${result.code === 401 ? 'TURN refused the credentials (401 Unauthorized)' : result.text}`;
    if (result.code === 401) banner('The TURN server refused this token\'s relay credentials (401 Unauthorized): they have expired. Rejoin to get fresh ones.', 'bad');
  }
}

// ---- join / leave ----

async function getMedia() {
  for (const c of [{ audio: true, video: { width: 640, height: 480 } }, { video: true }, { audio: true }]) {
    try { return await navigator.mediaDevices.getUserMedia(c); } catch { /* try less */ }
  }
  return null;
}

async function join(name, room) {
  demo.name = name;
  demo.room = room;
  demo.channel = `room-${room}`;
  localStorage.setItem('rtm-demo-name', name);
  history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);

  const stream = await getMedia();
  demo.stream = stream;
  const client = new RtmClient({ url: location.origin, token: tokenProvider(room, name) });
  demo.client = client;

  client.on('connecting', () => setStatus('connecting', 'connecting…'));
  client.on('connected', (w) => trace(`connected ${w.peerId} reconnect=${w.reconnect}`));
  client.on('close', (c) => trace(`close ${c.code} ${c.reason} retryIn=${c.retryInMs}`));
  client.on('presence', (p) => trace(`presence +${p.joined.map((j) => j.peerId)} -${p.left.map((l) => l.peerId)}`));
  client.on('sync', (p) => trace(`sync ${p.members.map((m) => m.peerId)} returning=${p.returning}`));
  client.on('connected', (w) => {
    setStatus('open', `connected · ${room}`);
    demo.events.push({ type: 'connected', reconnect: w.reconnect, at: Date.now() });
    if (w.reconnect) {
      banner('Reconnected. The call continues.', 'ok', 4000);
      sysLine('reconnected');
      renderMembers();
    }
    checkRelay(w.iceServers);
  });
  client.on('close', (c) => {
    demo.events.push({ type: 'close', code: c.code, terminal: c.terminal, retryInMs: c.retryInMs, at: Date.now() });
    if (c.terminal) {
      setStatus('closed', 'disconnected');
      if (c.code !== 1000) banner(`Disconnected by the server (${c.code}${c.reason ? ': ' + c.reason : ''}). Reload to join again.`, 'bad');
      return;
    }
    setStatus('waiting', 'reconnecting…');
    const secs = Math.max(1, Math.round((c.retryInMs || 0) / 1000));
    banner(`Connection to the server lost. Reconnecting in ${secs} s… Your call keeps going meanwhile.`);
  });
  client.on('error', (e) => console.warn('rtm:', redact(e.message)));
  client.on('presence', (p) => {
    if (p.channel !== demo.channel) return;
    for (const j of p.joined) sysLine(`${nameOf(j.metadata, j.peerId)} joined`);
    if (p.joined.length) publishState(true); // newcomers learn that we are muted or off camera
    for (const l of p.left) sysLine(`${tile(l.peerId)?.querySelector('.name').textContent || 'someone'} left`);
    renderMembers();
  });
  client.on('message', (m) => {
    if (m.channel !== demo.channel || !m.data || typeof m.data !== 'object') return;
    if (m.data.t === 'chat' && typeof m.data.text === 'string') {
      const li = document.createElement('li');
      const b = document.createElement('b');
      b.textContent = nameOf(m.fromMetadata, m.from);
      li.append(b, document.createTextNode(m.data.text.slice(0, 500)));
      addChat(li);
    } else if (m.data.t === 'state') {
      const t = tile(m.from);
      if (t) {
        t.querySelector('.badges').textContent = [m.data.muted ? 'muted' : '', m.data.camOff ? 'camera off' : ''].filter(Boolean).join(' · ');
        t.classList.toggle('no-video', !!m.data.camOff); // their avatar instead of black frames
      }
    }
  });

  setStatus('connecting', 'connecting…');
  // A token the demo endpoint will not give is a reason to stop, not to retry.
  let offTokenError = null;
  const tokenFailed = new Promise((_, reject) => {
    offTokenError = client.on('error', (e) => { if (e.code === 'token_provider') reject(e); });
  });
  try {
    await Promise.race([client.connect(), tokenFailed]);
  } finally {
    offTokenError();
  }
  await client.subscribe(demo.channel, { includeSenderMetadata: true });

  $('lobby').hidden = true;
  $('room-view').hidden = false;
  const self = ensureTile(client.peerId, name, true);
  if (stream && stream.getVideoTracks().length) self.querySelector('video').srcObject = stream;
  renderMembers();
  sysLine(`you joined room ${room}`);

  const call = new CallMesh(client, { channel: demo.channel, localStream: stream });
  demo.call = call;
  call.on('peerjoined', ({ peerId, metadata }) => ensureTile(peerId, nameOf(metadata, peerId)));
  call.on('stream', ({ peerId, stream: s }) => {
    const t = ensureTile(peerId, nameOf(client.members(demo.channel).find((m) => m.peerId === peerId)?.metadata, peerId));
    const v = t.querySelector('video');
    if (v.srcObject !== s) v.srcObject = s;
    v.play().catch(() => {});
  });
  call.on('connectionstatechange', ({ peerId, state }) => {
    tile(peerId)?.classList.toggle('connecting', state !== 'connected');
  });
  call.on('peerleft', ({ peerId }) => removeTile(peerId));
  call.on('icerestart', ({ peerId }) => demo.events.push({ type: 'icerestart', peerId, at: Date.now() }));
  for (const ev of ['signal', 'icerestart', 'connectionstatechange', 'peerreset', 'peerjoined', 'peerleft']) {
    call.on(ev, (e) => trace(`${ev} ${e.peerId} ${e.dir || ''} ${e.kind || ''} ${e.state || ''} ${e.code || ''}`));
  }
  call.on('icecandidateerror', (e) => {
    demo.iceErrors.push({ ...e, source: 'call' });
    if (e.errorCode === 401) banner('The TURN server refused the relay credentials (401 Unauthorized). Rejoin to get fresh ones.', 'bad');
  });
  call.on('error', (e) => console.warn('call:', redact(e.message)));
  await call.join();
  for (const p of call.list()) ensureTile(p.peerId, nameOf(p.metadata, p.peerId));
}

async function leave() {
  const { call, client, stream } = demo;
  demo.call = demo.client = null;
  if (call) await call.leave().catch(() => {});
  if (client) client.close();
  if (stream) for (const t of stream.getTracks()) t.stop();
  $('grid').textContent = '';
  $('chatLog').textContent = '';
  $('room-view').hidden = true;
  $('lobby').hidden = false;
  setStatus('idle', 'not connected');
  banner('');
}

// ---- wiring ----

$('join').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  const room = $('room').value.trim();
  const err = $('joinError');
  err.hidden = true;
  if (!name || !/^[A-Za-z0-9_-]{1,64}$/.test(room)) {
    err.textContent = 'Enter a name, and a room made of letters, digits, - or _.';
    err.hidden = false;
    return;
  }
  $('joinBtn').disabled = true;
  try {
    await join(name, room);
  } catch (ex) {
    err.textContent = `Could not join: ${redact(ex.message)}`;
    err.hidden = false;
    if (demo.client) demo.client.close();
    if (demo.stream) for (const t of demo.stream.getTracks()) t.stop();
    demo.client = null;
    setStatus('idle', 'not connected');
  } finally {
    $('joinBtn').disabled = false;
  }
});

function publishState(onlyIfOff = false) {
  const s = demo.stream;
  if (!demo.client || !s) return;
  const muted = s.getAudioTracks().every((t) => !t.enabled);
  const camOff = s.getVideoTracks().every((t) => !t.enabled);
  if (onlyIfOff && !muted && !camOff) return;
  demo.client.publish(demo.channel, { t: 'state', muted, camOff }).catch(() => {});
}

$('micBtn').addEventListener('click', () => {
  const tracks = demo.stream ? demo.stream.getAudioTracks() : [];
  const on = tracks.some((t) => t.enabled);
  for (const t of tracks) t.enabled = !on;
  $('micBtn').setAttribute('aria-pressed', String(on));
  $('micBtn').querySelector('.lbl').textContent = on ? 'Unmute' : 'Mute';
  publishState();
});

$('camBtn').addEventListener('click', () => {
  const tracks = demo.stream ? demo.stream.getVideoTracks() : [];
  const on = tracks.some((t) => t.enabled);
  for (const t of tracks) t.enabled = !on;
  $('camBtn').setAttribute('aria-pressed', String(on));
  $('camBtn').querySelector('.lbl').textContent = on ? 'Camera on' : 'Camera off';
  const self = demo.client && tile(demo.client.peerId);
  if (self) self.classList.toggle('no-video', on);
  publishState();
});

$('leaveBtn').addEventListener('click', () => { leave(); });

$('chatForm').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('chatInput');
  const text = input.value.trim();
  if (!text || !demo.client) return;
  input.value = '';
  const li = document.createElement('li');
  li.className = 'me';
  const b = document.createElement('b');
  b.textContent = 'you';
  li.append(b, document.createTextNode(text));
  addChat(li);
  demo.client.publish(demo.channel, { t: 'chat', text }).catch((ex) => sysLine(`not sent: ${redact(ex.message)}`));
});

// Closing the tab: tell the others right away instead of waiting for presence.
window.addEventListener('pagehide', () => { if (demo.call) demo.call.leave({ unsubscribe: false }); });
