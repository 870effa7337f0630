// call.js: a full-mesh WebRTC call over an RtmClient, for groups up to about 6.
//
// One RTCPeerConnection per remote peer in the call's channel. Negotiation is
// "perfect negotiation": both sides may offer at any time; on a collision the
// lexically smaller peerId is polite (rolls back and answers) and the larger
// one ignores the colliding offer. To keep collisions rare, the first offer of
// a pair comes from the impolite side, and only the impolite side restarts
// ICE. Offers, answers and trickled candidates go
// as direct `send`s; candidates that arrive before the remote description are
// buffered. After the signaling connection comes back, each connection gets
// the welcome's fresh iceServers and the impolite side restarts ICE. Every
// signal carries the sender's connection id (`pc`), so an offer from a peer
// that rebuilt its connection (reload, teardown) replaces ours cleanly instead
// of being fed to a stale one. When the client refreshes its token in-band
// (its `iceServers` event), every connection gets the new servers through
// setConfiguration, so the next ICE restart allocates with live TURN
// credentials instead of the first token's, which may have expired. After a
// resumed session (the broker held our place) the peers are known to be
// there, so the impolite side restarts ICE at once. The application supplies
// the local media and receives remote streams; nothing here touches the DOM.
//
//   const call = new CallMesh(rtm, { channel: 'room-42', localStream, dataChannel: 'chat' });
//   call.on('stream', ({ peerId, stream }) => { video.srcObject = stream; });
//   call.on('peerleft', ({ peerId }) => removeTile(peerId));
//   await call.join();

import { Emitter, RtmError } from './rtm.js';

const SIGNAL_RETRIES = 15;      // offers re-sent while the peer is still reconnecting
const SIGNAL_RETRY_MS = 1000;
const POLITE_FIRST_OFFER_WAIT_MS = 3000; // then the polite side offers itself

function randomId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// One remote peer: its connection and negotiation state. Owned by CallMesh.peers.
class Peer {
  constructor(peerId, metadata) {
    this.peerId = peerId;
    this.metadata = metadata;
    this.pc = null;
    this.pcId = null;          // our connection's id, sent as `pc`
    this.remotePcId = null;    // the remote connection we negotiate with
    this.polite = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.pendingCandidates = []; // until the remote description is set (bounded)
    this.stream = null;
    this.dataChannel = null;
    this.restartPending = false;
    this.negotiated = false;   // a remote description was applied at least once
    this.descSeq = 0;          // descriptions sent; a retry only re-sends the latest
    this.offerTimer = null;
    this.chain = Promise.resolve();
  }
}

const MAX_PENDING_CANDIDATES = 256;

function signalKind(m) {
  return m.bye ? 'bye' : m.description ? m.description.type : m.candidate ? 'candidate' : 'unknown';
}

export class CallMesh extends Emitter {
  // opts: { channel, localStream?, rtcConfig?, dataChannel? (label), maxPeers? (remote, default 5) }
  constructor(client, opts) {
    super();
    if (!client || !opts || !opts.channel) throw new RtmError('invalid_argument', 'client and channel are required');
    this.client = client;
    this.channel = opts.channel;
    this.localStream = opts.localStream || null;
    this.rtcConfig = opts.rtcConfig || {};
    this.dataChannelLabel = opts.dataChannel || null;
    this.maxPeers = opts.maxPeers || 5;
    this.peers = new Map();
    this.joined = false;
    this._offs = [];
  }

  // Subscribes (with presence) and connects to everyone already there.
  async join() {
    if (this.joined) return;
    this.joined = true;
    const c = this.client;
    this._offs.push(
      c.on('presence', (p) => this._onPresence(p)),
      c.on('direct', (d) => this._onDirect(d)),
      c.on('connected', (w) => { if (w.reconnect) this._onReconnect(w); }),
      c.on('iceServers', (e) => this._onIceServers(e.iceServers)),
      c.on('sync', (s) => { if (s.channel === this.channel) this._onSync(s); }),
    );
    if (!c.channels().includes(this.channel)) await c.subscribe(this.channel);
    for (const m of c.members(this.channel)) this._ensurePeer(m.peerId, m.metadata);
  }

  // Says goodbye to every peer, closes every connection, unsubscribes.
  async leave({ unsubscribe = true } = {}) {
    if (!this.joined) return;
    this.joined = false;
    const byes = [];
    for (const p of this.peers.values()) byes.push(this._signal(p, { bye: true }).catch(() => {}));
    await Promise.race([Promise.all(byes), new Promise((r) => setTimeout(r, 1000))]);
    for (const p of [...this.peers.values()]) this._removePeer(p.peerId, 'left');
    for (const off of this._offs.splice(0)) off();
    if (unsubscribe) await this.client.unsubscribe(this.channel).catch(() => {});
  }

  // Remote peers in the call: [{peerId, metadata, stream, connectionState, pc, dataChannel}]
  list() {
    return [...this.peers.values()].map((p) => ({
      peerId: p.peerId, metadata: p.metadata, stream: p.stream, pc: p.pc,
      connectionState: p.pc ? p.pc.connectionState : 'closed', dataChannel: p.dataChannel,
    }));
  }

  // ---- membership ----

  _onPresence(p) {
    if (p.channel !== this.channel || !this.joined) return;
    for (const j of p.joined) this._ensurePeer(j.peerId, j.metadata);
    for (const l of p.left) this._removePeer(l.peerId, 'left');
  }

  _onSync(s) {
    for (const m of s.members) this._ensurePeer(m.peerId, m.metadata);
    // The signaling path to a peer is back once it is in the list and not one
    // of those still expected back: restart ICE where we are the impolite side.
    const back = new Set(s.members.map((m) => m.peerId));
    for (const r of s.returning) back.delete(r);
    for (const p of this.peers.values()) {
      if (p.restartPending && !p.polite && back.has(p.peerId)) this._restartIce(p);
    }
  }

  _onReconnect(w) {
    for (const p of this.peers.values()) {
      if (!p.pc) continue;
      try { p.pc.setConfiguration(this._config(w.iceServers)); } catch (e) { this.emit('error', e); }
      p.restartPending = true;
      // Resumed: no snapshot (and so no sync) follows; the member list is the
      // held one and signals to a peer still in its own gap are queued for it.
      if (w.resumed && !p.polite) this._restartIce(p);
    }
  }

  // Fresh servers from an in-band refresh: the current connections keep
  // their allocations; the servers are for the next gathering (ICE restart).
  _onIceServers(iceServers) {
    for (const p of this.peers.values()) {
      if (!p.pc || p.pc.signalingState === 'closed') continue;
      try {
        p.pc.setConfiguration({ ...p.pc.getConfiguration(), iceServers });
      } catch (e) {
        this.emit('error', new RtmError('configuration', `new iceServers for ${p.peerId} refused: ${e.message}`));
      }
    }
    this.emit('iceservers', { iceServers, peers: [...this.peers.keys()] });
  }

  _restartIce(p) {
    p.restartPending = false;
    if (!p.pc || p.pc.signalingState === 'closed') return;
    this.emit('icerestart', { peerId: p.peerId });
    p.pc.restartIce();
  }

  _config(iceServers) {
    return { ...this.rtcConfig, iceServers: iceServers || this.client.iceServers, bundlePolicy: 'max-bundle' };
  }

  _ensurePeer(peerId, metadata) {
    if (!peerId || peerId === this.client.peerId) return null;
    let p = this.peers.get(peerId);
    if (p) { if (metadata !== undefined) p.metadata = metadata; return p; }
    if (this.peers.size >= this.maxPeers) { this.emit('full', { peerId }); return null; }
    p = new Peer(peerId, metadata);
    this.peers.set(peerId, p);
    this._createPc(p);
    this.emit('peerjoined', { peerId, metadata });
    return p;
  }

  _removePeer(peerId, why) {
    const p = this.peers.get(peerId);
    if (!p) return;
    this.peers.delete(peerId);
    this._closePc(p);
    this.emit('peerleft', { peerId, reason: why });
  }

  // ---- connections ----

  _createPc(p) {
    p.polite = this.client.peerId < p.peerId;
    p.pcId = randomId();
    p.remotePcId = null;
    p.makingOffer = p.ignoreOffer = false;
    p.pendingCandidates = [];
    p.stream = null;
    p.negotiated = false;
    clearTimeout(p.offerTimer);
    p.offerTimer = null;
    const pc = new RTCPeerConnection(this._config());
    p.pc = pc;
    const mine = () => p.pc === pc;
    pc.onnegotiationneeded = async () => {
      // The first offer comes from the impolite side. Both sides offering at
      // once is handled (the polite one rolls back), but Chromium can lose a
      // relay allocation that was in flight during that rollback, leaving the
      // polite side with no candidate at all; so the polite side waits for the
      // offer and only makes its own if none came in time.
      if (p.polite && !p.negotiated) {
        if (!p.offerTimer) {
          p.offerTimer = setTimeout(() => {
            p.offerTimer = null;
            if (mine() && !p.negotiated && pc.signalingState === 'stable') { p.negotiated = true; pc.onnegotiationneeded(); }
          }, POLITE_FIRST_OFFER_WAIT_MS);
        }
        return;
      }
      try {
        p.makingOffer = true;
        await pc.setLocalDescription();
        if (mine() && pc.localDescription) this._sendDescription(p, pc, pc.localDescription);
      } catch (e) {
        if (mine()) this.emit('error', new RtmError('negotiation', `offer to ${p.peerId} failed: ${e.message}`));
      } finally {
        p.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && mine()) this._signal(p, { candidate: candidate.toJSON() }).catch(() => {});
    };
    pc.onicecandidateerror = (e) => {
      if (mine()) this.emit('icecandidateerror', { peerId: p.peerId, errorCode: e.errorCode, errorText: e.errorText, url: e.url, address: e.address, port: e.port });
    };
    pc.onconnectionstatechange = () => {
      if (!mine()) return;
      this.emit('connectionstatechange', { peerId: p.peerId, state: pc.connectionState });
    };
    pc.oniceconnectionstatechange = () => {
      // One side restarts, so the restart offers cannot collide.
      if (mine() && pc.iceConnectionState === 'failed' && !p.polite) this._restartIce(p);
    };
    pc.ontrack = (e) => {
      if (!mine()) return;
      const stream = e.streams[0] || p.stream || new MediaStream();
      if (!e.streams[0]) stream.addTrack(e.track);
      const isNew = p.stream !== stream;
      p.stream = stream;
      this.emit('track', { peerId: p.peerId, track: e.track, stream });
      if (isNew) this.emit('stream', { peerId: p.peerId, stream });
    };
    if (this.localStream) for (const t of this.localStream.getTracks()) pc.addTrack(t, this.localStream);
    if (this.dataChannelLabel) {
      // Negotiated on both sides with the same id: no ordering race on who opens it.
      p.dataChannel = pc.createDataChannel(String(this.dataChannelLabel), { negotiated: true, id: 0 });
      this.emit('datachannel', { peerId: p.peerId, channel: p.dataChannel });
    }
  }

  _closePc(p) {
    const pc = p.pc;
    clearTimeout(p.offerTimer);
    p.offerTimer = null;
    p.pc = null;
    if (p.dataChannel) { try { p.dataChannel.close(); } catch { /* closed */ } p.dataChannel = null; }
    if (pc) { pc.onnegotiationneeded = pc.onicecandidate = pc.ontrack = pc.onicecandidateerror = null; pc.close(); }
  }

  // Rebuilds our side when the remote peer started over with a new connection.
  _resetPc(p) {
    this._closePc(p);
    this._createPc(p);
    this.emit('peerreset', { peerId: p.peerId });
  }

  // ---- signaling ----

  _signal(p, body) {
    this.emit('signal', { dir: 'out', peerId: p.peerId, kind: signalKind(body) });
    return this.client.send(p.peerId, { rtc: this.channel, pc: p.pcId, ...body }).catch((e) => {
      this.emit('signal', { dir: 'out-failed', peerId: p.peerId, kind: signalKind(body), code: e.code });
      throw e;
    });
  }

  // Sends a description; an offer whose recipient is not reachable yet (it is
  // reconnecting) is re-sent while it is still our current offer.
  // (A re-sent offer is pc.localDescription as it is then, which already
  // carries the candidates gathered meanwhile, whose own sends were lost too.)
  _sendDescription(p, pc, desc, attempt = 0) {
    const description = { type: desc.type, sdp: desc.sdp };
    const seq = attempt === 0 ? ++p.descSeq : p.descSeq;
    this._signal(p, { description }).catch((e) => {
      if (p.pc !== pc || attempt >= SIGNAL_RETRIES || description.type !== 'offer') return;
      if (e.code === 'closed') return;
      setTimeout(() => {
        if (p.pc === pc && p.descSeq === seq && pc.signalingState === 'have-local-offer' && pc.localDescription) {
          this._sendDescription(p, pc, pc.localDescription, attempt + 1);
        }
      }, SIGNAL_RETRY_MS);
    });
  }

  async _onDirect(d) {
    const m = d.data;
    if (!m || typeof m !== 'object' || m.rtc !== this.channel || !this.joined) return;
    this.emit('signal', { dir: 'in', peerId: d.from, kind: signalKind(m) });
    if (m.bye) { this._removePeer(d.from, 'bye'); return; }
    let p = this.peers.get(d.from);
    if (!p) {
      // Only an offer starts a connection with a peer we do not know yet (it
      // saw us before we saw it); a late candidate from a peer that left must
      // not bring it back as a ghost.
      if (!(m.description && m.description.type === 'offer')) return;
      const meta = d.fromMetadata !== undefined ? d.fromMetadata : undefined;
      p = this._ensurePeer(d.from, meta);
      if (!p) return;
    }
    // One signal at a time per peer, in arrival order.
    p.chain = p.chain.then(async () => {
      if (!p.pc || this.peers.get(p.peerId) !== p) return; // left meanwhile
      try {
        if (m.description) await this._onDescription(p, m);
        else if (m.candidate) await this._onCandidate(p, m);
      } catch (e) {
        this.emit('error', new RtmError('negotiation', `signal from ${d.from} failed: ${e.message}`));
      }
    });
  }

  async _onDescription(p, m) {
    const desc = m.description;
    if (desc.type === 'offer' && p.remotePcId && m.pc !== p.remotePcId) this._resetPc(p);
    if (desc.type === 'answer' && p.remotePcId && m.pc !== p.remotePcId && p.pc.signalingState !== 'have-local-offer') return;
    const pc = p.pc;
    const collision = desc.type === 'offer' && (p.makingOffer || pc.signalingState !== 'stable');
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    p.remotePcId = m.pc;
    await pc.setRemoteDescription(desc);
    if (p.pc !== pc) return;
    p.negotiated = true;
    // The remote description is set: the buffered candidates can go in now.
    const buffered = p.pendingCandidates.splice(0);
    for (const c of buffered) {
      // Candidates of an offer the remote rolled back do not apply: expected to fail.
      try { await pc.addIceCandidate(c); } catch { /* stale */ }
    }
    if (desc.type === 'offer') {
      await pc.setLocalDescription();
      if (p.pc === pc) this._sendDescription(p, pc, pc.localDescription);
    }
  }

  async _onCandidate(p, m) {
    if (p.remotePcId && m.pc !== p.remotePcId) return; // for a connection we replaced
    const pc = p.pc;
    if (!pc.remoteDescription) {
      if (p.pendingCandidates.length < MAX_PENDING_CANDIDATES) p.pendingCandidates.push(m.candidate);
      return;
    }
    try {
      await pc.addIceCandidate(m.candidate);
    } catch (e) {
      if (!p.ignoreOffer) throw e;
    }
  }
}
