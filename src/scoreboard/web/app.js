// The live scoreboard page: a dependency-free ES2020 module, no build step.
//
// - Live top 10 over `WS /ws/leaderboard?limit=10` (the token in the `bearer` subprotocol,
//   never in the URL): `snapshot` then `update`
//   messages (the full list each time), `ping` ignored, `error` shown; the connection,
//   backoff and watchdog are the published client module's (`client.js`, served at
//   /client.js for other sites too).
// - Rows are keyed by user id; rank moves animate with FLIP (transform, ~300 ms), changed
//   scores flash briefly, and prefers-reduced-motion turns the movement off.
// - Sign up / log in / sign out (token in sessionStorage), "Complete a task" (a fresh
//   Idempotency-Key per click), and the signed-in user's standing from `leaderboard/me`,
//   refreshed after every board change and every STANDING_REFRESH_MS (users outside the top 10
//   move without the top 10 changing).

import { LiveBoard } from "./client.js";

const LIMIT = 10;
const POLL_MS = 10_000; // signed out on a server that requires a token: refresh over HTTP
const STANDING_THROTTLE_MS = 1_000;
const STANDING_REFRESH_MS = 5_000;
const FLIP_MS = 300;
const TOKEN_KEY = "scoreboard.token";
const NAME_KEY = "scoreboard.name";
const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;
const NETWORK_MESSAGE = "Cannot reach the service. Check your connection.";

const $ = (selector) => document.querySelector(selector);
const els = {
  conn: $("#conn"),
  connLabel: $("#conn-label"),
  board: $("#board"),
  rows: $("#board-rows"),
  updated: $("#board-updated"),
  form: $("#auth-form"),
  username: $("#username"),
  password: $("#password"),
  displayName: $("#display-name"),
  loginBtn: $("#login-btn"),
  signupBtn: $("#signup-btn"),
  signedIn: $("#signed-in"),
  who: $("#who"),
  completeBtn: $("#complete-btn"),
  signoutBtn: $("#signout-btn"),
  message: $("#message"),
  standing: $("#standing"),
  standingSummary: $("#standing-summary"),
  around: $("#around"),
  aroundRows: $("#around-rows"),
};

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
const numberFormat = new Intl.NumberFormat();

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null, // {user_id, display_name}
  items: [],
  needsToken: false, // the server refused a socket without a token
  pollTimer: null,
  busy: false,
  created: null, // a username this page has just registered (its login may still be due)
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function uuid() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Insecure origins (e.g. a phone on the LAN) have no randomUUID; getRandomValues still works.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function tokenSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(padded)).sub ?? null;
  } catch {
    return null;
  }
}

function retryAfterSeconds(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - Date.now()) / 1000));
}

/** fetch() a JSON route; never throws. Returns {ok, status, data, error, retryAfter}. */
async function api(path, { method = "GET", body, auth = false, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (auth && state.token) h.Authorization = `Bearer ${state.token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    return {
      ok: false,
      status: 0,
      data: null,
      error: { code: "NETWORK", message: NETWORK_MESSAGE },
      retryAfter: null,
    };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  const out = {
    ok: res.ok,
    status: res.status,
    data,
    error: null,
    retryAfter: retryAfterSeconds(res.headers.get("Retry-After")),
  };
  if (!res.ok) {
    out.error = data && data.error && data.error.message
      ? data.error
      : { code: `HTTP_${res.status}`, message: `The request failed (HTTP ${res.status}).` };
  }
  return out;
}

function describeError(result) {
  if (result.status === 429) return `Slow down — try again in ${result.retryAfter ?? 1} s.`;
  if (result.status === 503 && result.retryAfter) {
    return `${result.error.message} Try again in ${result.retryAfter} s.`;
  }
  return result.error.message;
}

/** The service answers again: a "cannot reach" message still shown is no longer true. */
function reachedAgain() {
  if (say.text === NETWORK_MESSAGE) say("Connected again.", "ok");
}

function say(text, kind = "info") {
  say.text = text;
  // Clear first so that the same text twice is announced twice by screen readers.
  els.message.textContent = "";
  els.message.dataset.kind = kind;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => {
    els.message.textContent = text;
  }, 30);
}

// ---------------------------------------------------------------------------------------------
// Connection indicator

const CONN_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Not live — log in for live updates",
};

function setConn(stateName) {
  if (els.conn.dataset.state === stateName) return;
  els.conn.dataset.state = stateName;
  els.connLabel.textContent = CONN_LABELS[stateName];
  els.board.classList.toggle("stale", stateName !== "live" && stateName !== "offline");
}

// ---------------------------------------------------------------------------------------------
// Live socket: the published client module (/client.js) does the connection; the page decides
// what a refusal means (signed in: the session ended; signed out: poll over HTTP instead).

const live = new LiveBoard({
  limit: LIMIT,
  onBoard(items, generatedAt, kind) {
    if (kind === "snapshot") {
      stopPolling();
      reachedAgain();
    }
    renderBoard(items, generatedAt);
    requestStanding();
  },
  onState(liveState) {
    if (liveState in CONN_LABELS) setConn(liveState);
  },
  onError(error) {
    if (error.code !== "UNAUTHENTICATED") {
      say(error.message || "The live connection reported an error.", "error");
    } else if (live.token) {
      signOut("Your session has ended — please log in again.");
    } else {
      state.needsToken = true;
      connect();
    }
  },
});

/** (Re)connect now with the current token: a deliberate new connection (sign in/out). */
function connect() {
  if (!state.token && state.needsToken) {
    live.stop();
    setConn("offline");
    startPolling();
    return;
  }
  live.setToken(state.token);
}

function startPolling() {
  if (state.pollTimer) return;
  const poll = async () => {
    const r = await api(`/api/v1/leaderboard?limit=${LIMIT}`);
    if (r.ok) reachedAgain();
    if (r.ok && state.pollTimer) renderBoard(r.data.items, r.data.generated_at);
  };
  state.pollTimer = setInterval(poll, POLL_MS);
  poll();
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

window.addEventListener("online", () => live.wake());

// ---------------------------------------------------------------------------------------------
// Rendering the board

function buildRow(tr) {
  const rank = document.createElement("td");
  rank.className = "rank";
  const rankValue = document.createElement("span");
  rankValue.className = "rank-value";
  rank.append(rankValue);
  const name = document.createElement("th");
  name.scope = "row";
  name.className = "name";
  const displayName = document.createElement("span");
  displayName.className = "display-name";
  const you = document.createElement("span");
  you.className = "you";
  you.textContent = "you";
  name.append(displayName, you);
  const score = document.createElement("td");
  score.className = "score";
  tr.append(rank, name, score);
}

/** Fill (or refresh in place, keeping running highlights) one row of a scores table. */
function fillRow(tr, item) {
  if (!tr.cells.length) buildRow(tr);
  const mine = Boolean(state.me && item.user_id === state.me.user_id);
  tr.dataset.userId = item.user_id;
  tr.dataset.rank = String(item.rank);
  tr.dataset.score = String(item.score);
  tr.classList.toggle("me", mine);
  tr.classList.toggle("podium", item.rank <= 3);
  tr.querySelector(".rank-value").textContent = String(item.rank);
  tr.querySelector(".display-name").textContent = item.display_name;
  tr.querySelector(".you").hidden = !mine;
  tr.querySelector(".score").textContent = numberFormat.format(item.score);
}

function flash(el, className, ms) {
  el.classList.remove(className);
  void el.offsetWidth; // restart the CSS animation
  el.classList.add(className);
  clearTimeout(el._flashTimer);
  el._flashTimer = setTimeout(() => el.classList.remove(className), ms);
}

function renderBoard(items, generatedAt) {
  state.items = items;
  const tbody = els.rows;
  const animate = !reducedMotion.matches && document.visibilityState === "visible";
  const old = new Map();
  for (const tr of tbody.querySelectorAll("tr[data-user-id]")) {
    old.set(tr.dataset.userId, { tr, top: animate ? tr.getBoundingClientRect().top : 0 });
  }
  const keep = new Set();
  const moved = [];
  items.forEach((item, index) => {
    const before = old.get(item.user_id);
    const tr = before ? before.tr : document.createElement("tr");
    const prevRank = before ? Number(tr.dataset.rank) : null;
    const prevScore = before ? tr.dataset.score : null;
    fillRow(tr, item);
    keep.add(tr);
    if (tbody.children[index] !== tr) tbody.insertBefore(tr, tbody.children[index] || null);
    if (!before) {
      if (animate && old.size > 0) tr.animate([{ opacity: 0 }, { opacity: 1 }], FLIP_MS * 2);
      return;
    }
    if (prevScore !== String(item.score)) flash(tr.querySelector(".score"), "bumped", 1600);
    if (prevRank !== item.rank) {
      tr.dataset.move = item.rank < prevRank ? "up" : "down";
      clearTimeout(tr._moveTimer);
      tr._moveTimer = setTimeout(() => delete tr.dataset.move, 2000);
    }
    moved.push(before);
  });
  for (const tr of [...tbody.children]) if (!keep.has(tr)) tr.remove();
  if (items.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 3;
    td.textContent = "No scores yet — complete a task to lead the board.";
    tr.append(td);
    tbody.append(tr);
  }
  if (animate) {
    // FLIP: every surviving row starts where it was and glides to where it is now.
    for (const { tr, top } of moved) {
      const dy = top - tr.getBoundingClientRect().top;
      if (Math.abs(dy) < 1) continue;
      tr.animate([{ transform: `translateY(${dy}px)` }, { transform: "translateY(0)" }], {
        duration: FLIP_MS,
        easing: "cubic-bezier(0.2, 0.7, 0.3, 1)",
      });
    }
  }
  if (generatedAt) {
    const when = new Date(generatedAt);
    if (!Number.isNaN(when.getTime())) {
      els.updated.textContent = `As of ${when.toLocaleTimeString()}.`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Your standing (leaderboard/me), throttled

const standing = { timer: null, last: 0, inflight: false, again: false };

function requestStanding(now = false) {
  if (!state.token) return;
  if (now) {
    clearTimeout(standing.timer);
    standing.timer = null;
    loadStanding();
    return;
  }
  if (standing.timer) return;
  const wait = Math.max(0, standing.last + STANDING_THROTTLE_MS - Date.now());
  standing.timer = setTimeout(() => {
    standing.timer = null;
    loadStanding();
  }, wait);
}

async function loadStanding() {
  if (standing.inflight) {
    standing.again = true;
    return;
  }
  standing.inflight = true;
  standing.last = Date.now();
  const token = state.token;
  const r = await api("/api/v1/leaderboard/me?around=2", { auth: true });
  standing.inflight = false;
  if (token && token === state.token) {
    if (r.ok) {
      renderStanding(r.data);
    } else if (r.status === 401) {
      signOut("Your session has ended — please log in again.");
      return;
    }
  }
  if (standing.again) {
    standing.again = false;
    requestStanding();
  }
}

function renderStanding(data) {
  const changedName = !state.me || state.me.display_name !== data.display_name;
  state.me = { user_id: data.user_id, display_name: data.display_name };
  if (changedName) {
    els.who.textContent = data.display_name;
    sessionStorage.setItem(NAME_KEY, data.display_name);
    renderBoard(state.items);
  }
  els.standing.hidden = false;
  els.standing.dataset.rank = data.rank === null ? "" : String(data.rank);
  els.standing.dataset.score = String(data.score);
  if (data.rank === null) {
    els.standingSummary.textContent =
      "You have no points yet — complete a task to get on the board.";
    els.around.hidden = true;
    els.aroundRows.replaceChildren();
    return;
  }
  const outside = data.rank > LIMIT ? " — outside the top 10, keep going!" : ".";
  els.standingSummary.replaceChildren(
    "You are ranked ",
    strong(`#${data.rank}`),
    " with ",
    strong(numberFormat.format(data.score)),
    ` point${data.score === 1 ? "" : "s"}${outside}`,
  );
  const rows = data.around_me.map((item) => {
    const tr = document.createElement("tr");
    fillRow(tr, item);
    return tr;
  });
  els.aroundRows.replaceChildren(...rows);
  els.around.hidden = rows.length === 0;
}

function strong(text) {
  const el = document.createElement("strong");
  el.textContent = text;
  return el;
}

// ---------------------------------------------------------------------------------------------
// Account

function showSignedIn() {
  const signedIn = Boolean(state.token);
  els.form.hidden = signedIn;
  els.signedIn.hidden = !signedIn;
  els.standing.hidden = true;
  if (signedIn) {
    els.who.textContent = (state.me && state.me.display_name) || "";
  }
}

function setToken(token, name) {
  state.token = token;
  state.me = { user_id: tokenSubject(token), display_name: name };
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(NAME_KEY, name);
}

function signOut(message) {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(NAME_KEY);
  showSignedIn();
  renderBoard(state.items);
  say(message || "You are signed out.", message ? "error" : "info");
  connect();
  els.username.focus();
}

function setBusy(busy, ...buttons) {
  state.busy = busy;
  for (const b of buttons) {
    b.setAttribute("aria-disabled", String(busy));
    b.classList.toggle("busy", busy);
  }
}

function invalid(input, text) {
  input.setAttribute("aria-invalid", "true");
  input.focus();
  say(text, "error");
}

els.form.addEventListener("input", (event) => event.target.removeAttribute("aria-invalid"));

// Enter in the display-name field (only sign-up uses it) signs up; elsewhere it logs in.
els.displayName.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.isComposing) return;
  event.preventDefault();
  els.form.requestSubmit(els.signupBtn);
});

els.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (state.busy) return;
  const signup = event.submitter && event.submitter.value === "signup";
  const username = els.username.value.trim();
  const password = els.password.value;
  const displayName = els.displayName.value.trim();
  if (!USERNAME_RE.test(username)) {
    invalid(els.username, "Username: 3–32 letters, digits, _ . or -.");
    return;
  }
  if (password.length < 8 || password.length > 128) {
    invalid(els.password, "Password: 8 to 128 characters.");
    return;
  }
  setBusy(true, els.loginBtn, els.signupBtn);
  say(signup ? "Creating your account…" : "Logging in…");
  try {
    if (signup) {
      const body = { username, password };
      if (displayName) body.display_name = displayName;
      const r = await api("/api/v1/auth/register", { method: "POST", body });
      // 409 for the account this page created a moment ago (its login was refused): log in.
      const ours = r.status === 409 && state.created === username;
      if (!r.ok && !ours) {
        say(describeError(r), r.status === 429 ? "warn" : "error");
        return;
      }
      if (r.ok) state.created = username;
    }
    const r = await api("/api/v1/auth/login", { method: "POST", body: { username, password } });
    if (!r.ok) {
      if (state.created === username && r.status !== 401) {
        // The account exists now; say so, or the retry would report "username taken".
        say(`Your account “${username}” is created. Logging in failed: ${describeError(r)} ` +
          "Then press “Log in”.", "warn");
        return;
      }
      say(describeError(r), r.status === 429 ? "warn" : "error");
      if (r.status === 401) els.password.focus();
      return;
    }
    state.created = null;
    setToken(r.data.access_token, signup && displayName ? displayName : username);
    els.password.value = "";
    showSignedIn();
    renderBoard(state.items);
    say(signup ? `Welcome, ${state.me.display_name}! Your account is ready.` : "You are logged in.", "ok");
    connect();
    requestStanding(true);
    els.completeBtn.focus();
  } finally {
    setBusy(false, els.loginBtn, els.signupBtn);
  }
});

els.completeBtn.addEventListener("click", async () => {
  if (state.busy || !state.token) return;
  setBusy(true, els.completeBtn);
  try {
    const r = await api("/api/v1/scores/events", {
      method: "POST",
      auth: true,
      body: { action_type: "TASK_COMPLETED" },
      headers: { "Idempotency-Key": uuid() },
    });
    if (r.ok) {
      const d = r.data;
      say(
        `+${d.awarded_points} points — your score is ${numberFormat.format(d.new_score)}, ` +
          `rank #${d.rank}.`,
        "ok",
      );
      requestStanding(true);
    } else if (r.status === 401) {
      signOut("Your session has ended — please log in again.");
    } else {
      say(describeError(r), r.status === 429 ? "warn" : "error");
    }
  } finally {
    setBusy(false, els.completeBtn);
  }
});

els.signoutBtn.addEventListener("click", () => signOut());

// ---------------------------------------------------------------------------------------------
// Start

if (state.token) {
  state.me = {
    user_id: tokenSubject(state.token),
    display_name: sessionStorage.getItem(NAME_KEY) || "",
  };
}
showSignedIn();
connect();
requestStanding(true);
setInterval(() => {
  if (document.visibilityState === "visible") requestStanding();
}, STANDING_REFRESH_MS);
