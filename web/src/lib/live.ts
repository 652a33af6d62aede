// One WebSocket to /api/v1/live per tab, shared by every page. The session cookie rides with
// the handshake (no token in the URL); after a disconnect it reconnects with the last cursor,
// so no message of a short outage is missed; a "reset" (cursor too old) tells pages to reload
// their state over REST.

export interface LiveMessage {
  type: "alert" | "incident" | "camera" | "reset";
  cursor: string;
  camera_id?: string;
  [field: string]: unknown;
}

export type LiveState = "connecting" | "open" | "closed" | "denied";
type Listener = (m: LiveMessage) => void;
type StateListener = (s: LiveState) => void;

const MAX_BACKOFF_MS = 10_000;

class LiveClient {
  private socket: WebSocket | null = null;
  private cursor: string | null = null;
  private listeners = new Set<Listener>();
  private stateListeners = new Set<StateListener>();
  private backoff = 500;
  private timer: ReturnType<typeof setTimeout> | null = null;
  state: LiveState = "closed";

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.connect();
    return () => {
      this.listeners.delete(listener);
    };
  }

  onState(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => {
      this.stateListeners.delete(listener);
    };
  }

  private setState(s: LiveState): void {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private connect(): void {
    if (typeof window === "undefined" || this.socket || this.timer || this.state === "denied") return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const q = this.cursor ? `?cursor=${encodeURIComponent(this.cursor)}` : "";
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/live${q}`);
    this.socket = socket;
    this.setState("connecting");
    socket.onopen = () => {
      this.backoff = 500;
      this.setState("open");
    };
    socket.onmessage = (event) => {
      let m: LiveMessage;
      try {
        m = JSON.parse(String(event.data)) as LiveMessage;
      } catch {
        return;
      }
      if (typeof m.cursor === "string") this.cursor = m.cursor;
      if ((m.type as string) === "hello") return;
      for (const l of this.listeners) l(m);
    };
    socket.onclose = (event) => {
      this.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        this.setState("denied");
        return;
      }
      this.setState("closed");
      this.timer = setTimeout(() => {
        this.timer = null;
        this.connect();
      }, this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }
}

let client: LiveClient | null = null;

/** The tab's live connection (created on first use). */
export function live(): LiveClient {
  if (!client) client = new LiveClient();
  return client;
}
