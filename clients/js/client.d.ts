// Type declarations of client.js (Bocadillo's JavaScript client).

export declare const VERSION: string;

/** A room's last position: its stream's epoch and the offset of the last publication. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A message as received: an envelope, with a room's position on publications. */
export interface Message<T = unknown> {
  type: string;
  data: T;
  id?: string | number;
  room?: string;
  offset?: number;
  epoch?: string;
}

export interface Options {
  /** First reconnection delay (ms), doubled at every attempt. Default 500. */
  minDelay?: number;
  /** Cap of the exponential backoff (ms). Default 30000. */
  maxDelay?: number;
  /** Least delay after a 1013 close (server busy, or too slow a client) (ms). Default 5000. */
  busyDelay?: number;
  /** Least delay after a 1001 or 1012 close (a server going away) (ms). Default 1000. */
  restartDelay?: number;
  /** A connection open this long (ms) resets the backoff. Default 5000. */
  stableAfter?: number;
  /** Give up an opening handshake after this long (ms). Default 10000. */
  connectTimeout?: number;
  /** Default timeout of `request()` (ms). Default 10000. */
  requestTimeout?: number;
  /** Messages and requests kept while offline. Default 100. */
  queueLimit?: number;
  /** Message type of the app's join handler. Default "join". */
  joinType?: string;
  /** Message type of the app's leave handler. Default "leave". */
  leaveType?: string;
  /** Reconnect after a close: true (see `shouldReconnect`), false, or a function. */
  reconnect?: boolean | ((code: number, reason: string) => boolean);
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /** The WebSocket class (default: the global one). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

export declare const DEFAULTS: Readonly<Required<Omit<Options, "protocols" | "WebSocket">>> &
  Pick<Options, "protocols" | "WebSocket">;

/** Why a request got no response. `code` is a server error code or a client one. */
export declare class RequestError extends Error {
  constructor(code: string, message?: string, data?: unknown);
  /** "rate_limited", "invalid_data"... or "timeout", "disconnected", "closed", "queue_full". */
  code: string;
  /** The error envelope's data. */
  data: unknown;
}

export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface RoomResume {
  /** true: nothing was missed; false: the gap could not be filled (reload the room);
   *  null: no position was known, so nothing to recover. */
  recovered: boolean | null;
  epoch: string | null;
  offset: number | null;
}

export interface Events {
  connecting: { attempt: number };
  open: Record<string, never>;
  closed: { code: number; reason: string; wasClean: boolean };
  reconnecting: { delay: number; attempt: number; code: number; reason: string };
  resumed: { rooms: Record<string, RoomResume>; error?: undefined } | { error: RequestError; rooms?: undefined };
}

export declare function shouldReconnect(code: number): boolean;

export declare function reconnectDelay(
  attempt: number,
  code: number,
  reason: string,
  options: Pick<Required<Options>, "minDelay" | "maxDelay" | "busyDelay" | "restartDelay">,
  random?: () => number,
): number;

export declare function connect(url?: string, options?: Options): Client;

export declare class Client {
  constructor(url?: string, options?: Options);
  readonly url: string;
  readonly options: Required<Omit<Options, "protocols" | "WebSocket">> & Pick<Options, "protocols" | "WebSocket">;
  readonly state: State;
  /** Rooms joined with `join()`, and the last position seen in each. */
  readonly rooms: Map<string, Position | null>;
  /** Messages dropped because the offline queue was full. */
  readonly dropped: number;
  /** Messages and requests waiting in the offline queue. */
  readonly queued: number;
  on<T = unknown>(type: string, handler: (data: T, message: Message<T>) => void): () => void;
  off(type: string, handler: (data: any, message: Message<any>) => void): void;
  onEvent<K extends keyof Events>(name: K, listener: (detail: Events[K]) => void): () => boolean;
  onRequest<T = unknown, R = unknown>(
    type: string,
    answerer: (data: T, message: Message<T>) => R | Promise<R>,
  ): () => void;
  opened(): Promise<void>;
  send(type: string, data?: unknown): boolean;
  request<R = unknown>(type: string, data?: unknown, options?: { timeout?: number }): Promise<R>;
  join<R = unknown>(room: string, data?: unknown, options?: { timeout?: number }): Promise<R>;
  leave<R = unknown>(room: string, data?: unknown, options?: { timeout?: number }): Promise<R>;
  close(code?: number, reason?: string): void;
}
