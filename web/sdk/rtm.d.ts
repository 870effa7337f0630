// Type declarations for rtm.js, the rtm browser SDK.

export declare const CLOSE: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; CLIENT_TIMEOUT: 4000; UNAUTHORIZED: 4001;
  TOKEN_EXPIRED: 4002; ORIGIN: 4003; REPLACED: 4009; OVER_CAPACITY: 4010;
  RATE: 4011; KEY_REVOKED: 4012; KICKED: 4020;
}>;

/** A broker error (`code` is the wire code, e.g. 'channel_not_authorized', 'peer_not_found')
 *  or an SDK one: 'timeout', 'disconnected', 'closed', 'queue_full', 'token_provider', 'connect_failed'. */
export declare class RtmError extends Error {
  constructor(code: string, message?: string);
  readonly code: string;
}

/** Replaces anything token-like in a string (JWTs, token=...) before it is shown or logged. */
export declare function redact(s: string): string;

export type Unsubscribe = () => void;

export declare class Emitter<E extends Record<string, unknown>> {
  on<K extends keyof E>(event: K, fn: (arg: E[K]) => void): Unsubscribe;
  off<K extends keyof E>(event: K, fn: (arg: E[K]) => void): void;
  once<K extends keyof E>(event: K, fn: (arg: E[K]) => void): Unsubscribe;
  emit<K extends keyof E>(event: K, arg: E[K]): void;
}

/** Called before every connect and reconnect, and before each in-band refresh; may fetch a token
 *  from your backend. */
export type TokenProvider = () => string | Promise<string>;

export interface RtmClientOptions {
  /** ws://host:port (or http://, or a full ws://host:port/v1). Never put the token here. */
  url: string;
  token: string | TokenProvider;
  /** A WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
  pingIntervalMs?: number;       // 20000
  inactivityTimeoutMs?: number;  // 60000: no frame for this long closes with 4000 and reconnects
  requestTimeoutMs?: number;     // 10000
  backoffInitialMs?: number;     // 500, doubling
  backoffMaxMs?: number;         // 30000
  backoffJitter?: number;        // 0.2 (plus or minus 20 %)
  overCapacityWaitMs?: number;   // 30000: the least wait after 4010
  reconcileGraceMs?: number;     // 3000: a member missing after a reconnect is reported left only after this
  maxQueued?: number;            // 256 requests waiting for a connection, then 'queue_full'
  connectTimeoutMs?: number;     // 15000 for the welcome to arrive
  /** 'auto' (default): 'message' when the broker lists it at GET /.well-known/rtm, else 'query'.
   *  'message': ?auth=message and the token in the first frame (in no URL). 'query': ?token= on the
   *  socket URL. 'subprotocol': `token.<jwt>` beside `rtm.v1` (libwebsockets 4.1.6 refuses such long
   *  protocol headers). */
  tokenTransport?: 'auto' | 'message' | 'query' | 'subprotocol';
  /** true (default): a plain HTTP request to the broker's host before each socket, so a host
   *  that is down never makes the browser print the socket URL (and token) in the console. */
  probe?: boolean;
  probeTimeoutMs?: number;       // 5000
  /** true (default): ask for the protocol extensions (`&ext=1`, docs/EXTENSIONS.md): in-band token
   *  refresh, session resume after a drop, per-sender `seq` on direct messages. A broker without
   *  them ignores the request and the client speaks the core protocol. */
  extensions?: boolean;
  /** 60000: refresh this long before expiresAt if the broker's token_expiring has not come first.
   *  Needs a token provider (a fixed token string is never refreshed; 4002 ends its session). */
  refreshBeforeExpiryMs?: number;
  /** 5000: one more try after a refresh failed for a transient reason (provider error, timeout);
   *  at most 3 tries per token, a refused refresh is not retried (4002 and a reconnect follow). */
  refreshRetryMs?: number;
}

export interface Member { peerId: string; metadata?: Record<string, unknown>; }

export interface Connected {
  peerId: string;
  expiresAt: number | null;
  serverTime: number;
  maxMessageSize: number;
  metadata: Record<string, unknown>;
  /** metadata.iceServers, the shape RTCPeerConnection takes as is. */
  iceServers: RTCIceServer[];
  /** true on every welcome after the first. */
  reconnect: boolean;
  /** Extension sessions: the broker's id for this session's place (null otherwise). */
  sessionId: string | null;
  /** true when this welcome took back a held session (after a drop, within the resume window):
   *  subscriptions, member lists and seq counters carried on, nothing was resubscribed, and the
   *  broker replays the gap's direct messages and presence changes in order. */
  resumed: boolean;
}

export interface CloseEvent_ {
  code: number;
  reason: string;
  /** true for 4001, 4003, 4012, 4020 and client close(): no reconnect. */
  terminal: boolean;
  willReconnect: boolean;
  retryInMs?: number;
}

export interface RtmEvents {
  [k: string]: unknown;
  connecting: { attempt: number };
  connected: Connected;
  message: { channel: string; from: string; data: unknown; fromMetadata?: Record<string, unknown> };
  /** seq (extension sessions): counts per sender from 1, continuous across a resume. */
  direct: { from: string; data: unknown; fromMetadata?: Record<string, unknown>; seq?: number };
  /** Real joins and leaves only (reconnects are reconciled); members is the list after the change. */
  presence: { channel: string; joined: Member[]; left: { peerId: string }[]; members: Member[] };
  /** After each subscribe's snapshot, and when a peer missing from a post-reconnect snapshot comes
   *  back within the grace: the full list, and peers still inside the grace. */
  sync: { channel: string; members: Member[]; returning: string[] };
  close: CloseEvent_;
  /** A refresh that was refused arrives as error with the broker's code (e.g. 'invalid_token') and a
   *  message starting 'refresh refused:'. */
  error: RtmError;
  /** The broker's token_expiring: a refresh through the token provider starts now. */
  expiring: { expiresAt: number | null };
  /** A refresh was acknowledged: the session continues on the new token. */
  refreshed: { expiresAt: number; metadata: Record<string, unknown> };
  /** A refresh brought metadata.iceServers (fresh TURN credentials); CallMesh applies them. */
  iceServers: { iceServers: RTCIceServer[]; expiresAt: number };
  /** A direct from `from` skipped seq numbers: expected..got-1 were lost (e.g. over the broker's
   *  resume queue bound). Emitted just before the direct that revealed it. */
  gap: { from: string; expected: number; got: number };
  /** Extensions: a refresh or resume with a narrower token ended these subscriptions; they left
   *  channels() (a presence event with every member leaving came first) and are not resubscribed. */
  unsubscribed: { channels: string[] };
}

export declare class RtmClient extends Emitter<RtmEvents> {
  constructor(opts: RtmClientOptions);
  readonly state: 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';
  readonly peerId: string | null;
  /** Where the token travels, once settled (before the first socket). */
  readonly tokenTransport: 'message' | 'query' | 'subprotocol' | null;
  /** The latest iceServers: the welcome's, then each refresh's. */
  readonly iceServers: RTCIceServer[];
  /** The token in force's expiry (unix s; updated by each refresh), null for publishable keys. */
  readonly expiresAt: number | null;
  /** The token in force's metadata (welcome, then each refresh). */
  readonly metadata: Record<string, unknown>;
  /** Extension sessions: the id a reconnect asks to resume with; null otherwise. */
  readonly sessionId: string | null;
  /** The latest welcome frame as received. */
  readonly welcome: Record<string, unknown> | null;
  /** Resolves with the first welcome; rejects if the broker closes with a terminal code first. */
  connect(): Promise<Connected>;
  /** Closes for good: no reconnect; pending requests reject with 'closed'. */
  close(code?: number, reason?: string): void;
  /** Each resolves with the ack frame or rejects with an RtmError; exactly once. Requests made
   *  while disconnected wait (bounded by maxQueued) and are sent after the next welcome. */
  subscribe(channel: string, opts?: { includeSenderMetadata?: boolean }): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  publish(channel: string, data: unknown): Promise<unknown>;
  send(to: string, data: unknown): Promise<unknown>;
  /** The other members of a subscribed channel. */
  members(channel: string): Member[];
  /** Channels subscribed (or being subscribed). */
  channels(): string[];
}
