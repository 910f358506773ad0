// scoreboard live client: a small dependency-free ES module (served at /client.js).
//
//   <script type="module">
//     import { LiveBoard } from "https://scores.example.com/client.js";
//     const board = new LiveBoard({
//       base: "https://scores.example.com",   // the service (default: this page's origin)
//       token: myToken,                       // a bearer token (null: the server may refuse)
//       limit: 10,
//       onBoard: (items, generatedAt) => render(items),
//       onState: (state) => showIndicator(state),
//       onError: (error) => console.warn(error.code, error.message),
//     });
//     board.start();
//   </script>
//
// What it does: one WebSocket to `/ws/leaderboard?limit=N` with the token in the `bearer`
// subprotocol (never in the URL, which logs and proxies record); `onBoard` with the full list
// at the first `snapshot` and at every `update`; reconnects with exponential backoff plus
// jitter (0.5 s doubling to 10 s, reset by a snapshot), and every reconnect starts with a fresh
// snapshot, so a client always ends on the true board; a watchdog reconnects when the server's
// 25 s pings stop. States given to `onState`: "connecting", "live", "reconnecting",
// "unauthenticated" (the server refused the token or its absence: no retry with the same
// credentials; call `setToken`), "stopped". Server `error` messages go to `onError`.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const WATCHDOG_MS = 65_000; // the server pings every 25 s; silence this long means a dead link

export class LiveBoard {
  constructor({
    base = globalThis.location ? globalThis.location.origin : "",
    token = null,
    limit = 10,
    onBoard = () => {},
    onState = () => {},
    onError = () => {},
  } = {}) {
    this.base = base.replace(/\/+$/, "");
    this.token = token;
    this.limit = limit;
    this.onBoard = onBoard;
    this.onState = onState;
    this.onError = onError;
    this.ws = null;
    this.attempt = 0; // consecutive failed attempts (drives the backoff)
    this.everLive = false;
    this.deliberate = false; // the next connect is a start, not a recovery
    this.running = false;
    this.reconnectTimer = null;
    this.watchdogTimer = null;
    this.state = "stopped";
  }

  /** Connect (again) now: a deliberate new connection, the backoff starts over. */
  start() {
    this.running = true;
    this.attempt = 0;
    this.deliberate = true;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.drop();
    this.setState("stopped");
  }

  /** Use another token (or none) from now on: reconnects at once. */
  setToken(token) {
    this.token = token;
    this.start();
  }

  /** Reconnect now if not connected (e.g. the browser came back online). */
  wake() {
    if (this.running && !this.ws) this.start();
  }

  get connected() {
    return this.ws !== null;
  }

  // -- internals ------------------------------------------------------------------------------

  url() {
    const origin = this.base || "";
    const wsBase = origin.replace(/^http/, "ws");
    return `${wsBase}/ws/leaderboard?limit=${encodeURIComponent(String(this.limit))}`;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  drop() {
    const sock = this.ws;
    this.ws = null;
    clearTimeout(this.watchdogTimer);
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try {
        sock.close(1000, "client closing");
      } catch {
        // already closed
      }
    }
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.drop();
    if (!this.running) return;
    this.setState(this.everLive && !this.deliberate ? "reconnecting" : "connecting");
    this.deliberate = false;
    let sock;
    try {
      sock = new WebSocket(this.url(), this.token ? ["bearer", this.token] : []);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = sock;
    this.armWatchdog(sock);
    sock.onmessage = (event) => {
      if (this.ws !== sock) return;
      this.armWatchdog(sock);
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handle(msg);
    };
    sock.onclose = () => {
      if (this.ws !== sock) return;
      this.ws = null;
      clearTimeout(this.watchdogTimer);
      this.scheduleReconnect();
    };
  }

  handle(msg) {
    switch (msg.type) {
      case "snapshot":
        this.attempt = 0;
        this.everLive = true;
        this.setState("live");
        this.onBoard(msg.items, msg.generated_at, "snapshot");
        break;
      case "update":
        this.onBoard(msg.items, msg.generated_at, "update");
        break;
      case "error": {
        const error = msg.error || {};
        if (error.code === "UNAUTHENTICATED") {
          this.running = false; // the server closes with 4401: not the same credentials again
          this.drop();
          this.setState("unauthenticated");
        }
        this.onError(error);
        break;
      }
      default: // ping, pong, and anything newer than this client
        break;
    }
  }

  scheduleReconnect() {
    if (!this.running) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2); // "equal jitter"
    this.attempt += 1;
    this.setState(this.everLive ? "reconnecting" : "connecting");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  armWatchdog(sock) {
    clearTimeout(this.watchdogTimer);
    this.watchdogTimer = setTimeout(() => {
      if (this.ws !== sock) return;
      this.drop();
      this.scheduleReconnect();
    }, WATCHDOG_MS);
  }
}
