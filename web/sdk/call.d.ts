// Type declarations for call.js, the full-mesh WebRTC helper over an RtmClient.
import { Emitter, RtmClient, RtmError } from './rtm.js';

export interface CallMeshOptions {
  /** The channel whose members are in the call (subscribed by join()). */
  channel: string;
  /** Local media; its tracks are added to every connection. */
  localStream?: MediaStream | null;
  /** Extra RTCConfiguration (e.g. iceTransportPolicy: 'relay'); iceServers come from the welcome
   *  (then from each in-band refresh) and bundlePolicy is always 'max-bundle'. */
  rtcConfig?: RTCConfiguration;
  /** Label of a negotiated data channel (id 0) opened to every peer. */
  dataChannel?: string | null;
  /** Remote peers at most (default 5: a mesh of 6). */
  maxPeers?: number;
}

export interface CallPeer {
  peerId: string;
  metadata?: Record<string, unknown>;
  stream: MediaStream | null;
  pc: RTCPeerConnection | null;
  connectionState: RTCPeerConnectionState | 'closed';
  dataChannel: RTCDataChannel | null;
}

export interface CallEvents {
  [k: string]: unknown;
  peerjoined: { peerId: string; metadata?: Record<string, unknown> };
  /** 'left' (presence or leave()) or 'bye' (the peer hung up). */
  peerleft: { peerId: string; reason: 'left' | 'bye' };
  /** The peer rebuilt its connection; ours was replaced (expect a new 'stream'). */
  peerreset: { peerId: string };
  stream: { peerId: string; stream: MediaStream };
  track: { peerId: string; track: MediaStreamTrack; stream: MediaStream };
  datachannel: { peerId: string; channel: RTCDataChannel };
  connectionstatechange: { peerId: string; state: RTCPeerConnectionState };
  icecandidateerror: { peerId: string; errorCode: number; errorText: string; url: string; address: string | null; port: number | null };
  icerestart: { peerId: string };
  /** The client's refresh brought new iceServers; every connection got them (setConfiguration)
   *  for its next ICE restart. */
  iceservers: { iceServers: RTCIceServer[]; peers: string[] };
  full: { peerId: string };
  error: RtmError | Error;
}

export declare class CallMesh extends Emitter<CallEvents> {
  constructor(client: RtmClient, opts: CallMeshOptions);
  readonly channel: string;
  readonly peers: Map<string, unknown>;
  localStream: MediaStream | null;
  /** Subscribes to the channel (with presence) and connects to everyone in it. */
  join(): Promise<void>;
  /** Sends 'bye' to every peer, closes every connection and (by default) unsubscribes. */
  leave(opts?: { unsubscribe?: boolean }): Promise<void>;
  list(): CallPeer[];
}
