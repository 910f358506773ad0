// The admin page (`GET /admin`): a dependency-free ES module, no build step, no inline script
// (the page is served with a strict Content-Security-Policy).
//
// - Sign in with a username and password; an account without the admin role is told so (403
//   from an admin route) and not kept signed in. The session: `admin-api.js`.
// - The open flags queue (`GET /api/v1/admin/flags?status=open`, refreshed every
//   FLAGS_REFRESH_MS), each flag resolvable: dismiss, ban or quarantine, with a reason.
// - A user looked up by username or user id: status, boards, open flags, recent events (each
//   voidable unless voided already or itself a compensation), ban/unban/quarantine/release,
//   adjust. After every action the view is fetched again and shows the new state; a refusal
//   shows the API's message.
// - The admin audit log's newest entries.
// Everything rendered from data goes through textContent (names are user input).

import * as api from "./admin-api.js";
import { confirmAction } from "./admin-dialog.js";

const FLAGS_REFRESH_MS = 5_000;
const EVENTS_PAGE = 20;
const AUDIT_PAGE = 15;
const NOT_ADMIN = "This account is not an admin.";
const ENDED = "Your session has ended — please sign in again.";

const $ = (selector) => document.querySelector(selector);
const numberFormat = new Intl.NumberFormat();

const state = {
  user: null, // the user view shown, or null
  events: [], // the user's events shown, newest first
  eventsCursor: null,
  seq: 0, // bumps on every new lookup: answers for an older one are dropped
  flagsTimer: null,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function say(text, kind = "info") {
  const el = $("#message");
  el.textContent = text;
  el.dataset.kind = kind;
}

function cell(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined && text !== null) el.textContent = String(text);
  if (className) el.className = className;
  return el;
}

function when(iso) {
  const date = new Date(iso);
  const el = cell("td", Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
  el.dataset.at = iso;
  return el;
}

function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function empty(tbody, columns, text) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  const td = cell("td", text);
  td.colSpan = columns;
  tr.append(td);
  tbody.replaceChildren(tr);
}

/** A failed authenticated call: a 401 ends the session, a 403 means not an admin. True when
 * the failure was handled here (the caller shows nothing more). */
function ended(result) {
  if (result.status === 401) {
    signOut(ENDED, "error");
    return true;
  }
  if (result.status === 403) {
    signOut(NOT_ADMIN, "error");
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

function showSignedIn() {
  const on = api.signedIn();
  $("#signin").hidden = on;
  $("#console").hidden = !on;
  $("#session").hidden = !on;
  $("#admin-who").textContent = on ? api.username() : "";
  if (!on) {
    $("#user").hidden = true;
    state.user = null;
    clearInterval(state.flagsTimer);
    state.flagsTimer = null;
  }
}

function signOut(text, kind = "info") {
  api.logout();
  showSignedIn();
  say(text, kind);
  $("#signin-password").value = "";
  $("#signin-username").focus();
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("#signin-username").value.trim();
  const password = $("#signin-password").value;
  if (!name || !password) {
    say("Enter a username and a password.", "error");
    return;
  }
  const button = $("#signin-btn");
  button.disabled = true;
  say("Signing in…");
  try {
    const r = await api.login(name, password);
    if (!r.ok) {
      say(api.describe(r), "error");
      return;
    }
    // Any admin route tells whether this account is an admin: the audit log is read anyway.
    const probe = await api.authed(`/api/v1/admin/audit?limit=${AUDIT_PAGE}`);
    if (!probe.ok) {
      if (!ended(probe)) {
        await api.logout();
        say(api.describe(probe), "error");
      }
      return;
    }
    $("#signin-password").value = "";
    showSignedIn();
    say(`Signed in as ${name}.`, "ok");
    renderAudit(probe.data.items);
    loadFlags();
    state.flagsTimer = setInterval(() => {
      if (document.visibilityState === "visible") loadFlags();
    }, FLAGS_REFRESH_MS);
    $("#lookup-value").focus();
  } finally {
    button.disabled = false;
  }
});

$("#signout-btn").addEventListener("click", () => signOut("You are signed out."));

// ---------------------------------------------------------------------------------------------
// Flags queue

async function loadFlags() {
  const r = await api.authed("/api/v1/admin/flags?status=open");
  if (!api.signedIn()) return;
  const status = $("#flags-status");
  if (!r.ok) {
    if (!ended(r)) status.textContent = `The flags queue could not be read: ${api.describe(r)}`;
    return;
  }
  const items = r.data.items;
  status.textContent = items.length === 1 ? "1 open flag." : `${items.length} open flags.`;
  const tbody = $("#flags-rows");
  if (items.length === 0) {
    empty(tbody, 5, "No open flags.");
    return;
  }
  tbody.replaceChildren(...items.map(flagRow));
}

function flagRow(flag) {
  const tr = document.createElement("tr");
  tr.dataset.flagId = String(flag.flag_id);
  tr.dataset.userId = flag.user_id;
  const user = cell("td");
  const open = cell("button", flag.user_id, "link");
  open.type = "button";
  open.title = "Look this user up";
  open.addEventListener("click", () => lookUp("user_id", flag.user_id));
  user.append(open);
  const buttons = cell("td", null, "actions");
  for (const [action, label] of [["dismiss", "Dismiss"], ["ban", "Ban"], ["quarantine", "Quarantine"]]) {
    const b = cell("button", label, action === "ban" ? "danger" : "");
    b.type = "button";
    b.dataset.action = action;
    b.addEventListener("click", () => resolveFlag(flag, action, label));
    buttons.append(b);
  }
  tr.append(when(flag.created_at), user, cell("td", flag.rule), cell("td", detailText(flag.detail)), buttons);
  return tr;
}

async function resolveFlag(flag, action, label) {
  const done = await confirmAction({
    title: `${label}: flag ${flag.flag_id}`,
    text: `${flag.rule} on user ${flag.user_id}.`,
    run: (reason) => api.authed(`/api/v1/admin/flags/${encodeURIComponent(flag.flag_id)}/resolve`, {
      method: "POST",
      body: { action, reason },
    }),
  });
  if (!done || ended(done)) return;
  say(`Flag ${flag.flag_id} resolved: ${action}.`, "ok");
  await Promise.all([loadFlags(), loadAudit(), state.user && state.user.user_id === flag.user_id ? reloadUser() : null]);
}

$("#flags-refresh").addEventListener("click", () => loadFlags());

// ---------------------------------------------------------------------------------------------
// User lookup and view

async function lookUp(by, value) {
  const seq = ++state.seq;
  const path = by === "username"
    ? `/api/v1/admin/users?username=${encodeURIComponent(value)}`
    : `/api/v1/admin/users/${encodeURIComponent(value)}`;
  say("Looking up…");
  const r = await api.authed(path);
  if (seq !== state.seq || !api.signedIn()) return;
  if (!r.ok) {
    if (!ended(r)) say(api.describe(r), "error");
    return;
  }
  say("");
  renderUser(r.data);
  await loadEvents(true);
  $("#user").scrollIntoView({ block: "nearest" });
}

$("#lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#lookup-value").value.trim();
  if (!value) {
    say("Enter a username or a user id.", "error");
    return;
  }
  lookUp($("#lookup-by").value, value);
});

async function reloadUser() {
  if (!state.user) return;
  const seq = state.seq;
  const r = await api.authed(`/api/v1/admin/users/${encodeURIComponent(state.user.user_id)}`);
  if (seq !== state.seq || !api.signedIn()) return;
  if (!r.ok) {
    if (!ended(r)) say(api.describe(r), "error");
    return;
  }
  renderUser(r.data);
  await loadEvents(true);
}

$("#user-refresh").addEventListener("click", () => reloadUser());

function renderUser(view) {
  state.user = view;
  const section = $("#user");
  section.hidden = false;
  section.dataset.userId = view.user_id;
  $("#user-name").textContent = view.display_name;
  const status = $("#user-status");
  status.textContent = view.status;
  status.dataset.status = view.status;
  $("#user-username").textContent = view.username;
  $("#user-id").textContent = view.user_id;
  $("#user-flags").textContent = String(view.open_flags);
  $("#ban-btn").disabled = view.status === "banned";
  $("#unban-btn").disabled = view.status !== "banned";
  $("#quarantine-btn").disabled = view.status === "quarantined";
  $("#release-btn").disabled = view.status !== "quarantined";
  const tbody = $("#boards-rows");
  if (view.boards.length === 0) {
    empty(tbody, 4, "On no board yet.");
    return;
  }
  tbody.replaceChildren(...view.boards.map((b) => {
    const tr = document.createElement("tr");
    tr.dataset.scope = b.scope;
    tr.dataset.period = b.period;
    tr.dataset.score = String(b.score);
    tr.dataset.rank = b.rank === null ? "" : String(b.rank);
    const rank = b.rank === null ? (view.status === "active" ? "—" : "hidden") : `#${b.rank}`;
    tr.append(cell("td", b.scope), cell("td", b.period), cell("td", numberFormat.format(b.score), "score"), cell("td", rank, "score"));
    return tr;
  }));
}

async function loadEvents(fresh) {
  if (!state.user) return;
  const seq = state.seq;
  const params = new URLSearchParams({ user_id: state.user.user_id, limit: String(EVENTS_PAGE) });
  if (!fresh && state.eventsCursor) params.set("cursor", state.eventsCursor);
  const r = await api.authed(`/api/v1/admin/events?${params}`);
  if (seq !== state.seq || !api.signedIn()) return;
  const status = $("#events-status");
  if (!r.ok) {
    if (!ended(r)) status.textContent = `The events could not be read: ${api.describe(r)}`;
    if (fresh) $("#events-rows").replaceChildren();
    $("#events-more").hidden = true;
    return;
  }
  state.events = fresh ? r.data.items : state.events.concat(r.data.items);
  state.eventsCursor = r.data.next_cursor ?? null;
  status.textContent = "";
  $("#events-more").hidden = !state.eventsCursor;
  const tbody = $("#events-rows");
  if (state.events.length === 0) {
    empty(tbody, 7, "No events.");
    return;
  }
  tbody.replaceChildren(...state.events.map(eventRow));
}

function eventRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.eventId = String(e.event_id);
  tr.dataset.points = String(e.points);
  const voided = e.voided_by !== null && e.voided_by !== undefined;
  const compensation = e.voids !== null && e.voids !== undefined;
  tr.dataset.state = voided ? "voided" : compensation ? "compensation" : "counted";
  const stateText = voided ? `voided by #${e.voided_by}` : compensation ? `voids #${e.voids}` : "";
  const points = e.points > 0 ? `+${numberFormat.format(e.points)}` : numberFormat.format(e.points);
  const button = cell("button", "Void", "void");
  button.type = "button";
  button.disabled = voided || compensation;
  button.title = voided ? "Already voided" : compensation ? "A compensation cannot be voided" : "Void this event";
  button.addEventListener("click", () => voidEvent(e));
  const last = cell("td", null, "actions");
  last.append(button);
  tr.append(cell("td", `#${e.event_id}`), when(e.created_at), cell("td", e.action_type), cell("td", points, "score"), cell("td", e.source), cell("td", stateText, "state"), last);
  return tr;
}

$("#events-more").addEventListener("click", () => loadEvents(false));

async function voidEvent(e) {
  const done = await confirmAction({
    title: `Void event #${e.event_id}`,
    text: `${e.action_type}, ${e.points} points: a compensating event takes them back on every board.`,
    run: (reason) => api.authed(`/api/v1/admin/events/${e.event_id}/void`, { method: "POST", body: { reason } }),
  });
  if (!done || ended(done)) return;
  say(`Event #${e.event_id} voided.`, "ok");
  await Promise.all([reloadUser(), loadAudit()]);
}

const VERBS = { ban: "Ban", unban: "Unban", quarantine: "Quarantine", release: "Release" };
const EFFECTS = {
  ban: "They leave every board and their writes are refused.",
  unban: "They are back on every board with their scores.",
  quarantine: "They are hidden from every public board; they still see their own standing.",
  release: "They are back on every public board.",
};

for (const action of Object.keys(VERBS)) {
  $(`#${action}-btn`).addEventListener("click", async () => {
    const user = state.user;
    if (!user) return;
    const done = await confirmAction({
      title: `${VERBS[action]} ${user.display_name}`,
      text: EFFECTS[action],
      run: (reason) => api.authed(`/api/v1/admin/users/${encodeURIComponent(user.user_id)}/${action}`, {
        method: "POST",
        body: { reason },
      }),
    });
    if (!done || ended(done)) return;
    say(`${user.display_name}: ${done.data.status}.`, "ok");
    if (!state.user || state.user.user_id !== user.user_id) return;
    renderUser(done.data); // the answer is the user's view afterwards
    await Promise.all([loadEvents(true), loadAudit()]);
  });
}

$("#adjust-btn").addEventListener("click", async () => {
  const user = state.user;
  if (!user) return;
  const done = await confirmAction({
    title: `Adjust ${user.display_name}'s score`,
    text: "Counts on every board that counts all actions, in the current period.",
    points: true,
    run: (reason, points) => api.authed(`/api/v1/admin/users/${encodeURIComponent(user.user_id)}/adjust`, {
      method: "POST",
      body: { points, reason },
    }),
  });
  if (!done || ended(done)) return;
  say(`Adjusted by ${done.data.awarded_points}: the score is ${numberFormat.format(done.data.new_score)}.`, "ok");
  await Promise.all([reloadUser(), loadAudit()]);
});

// ---------------------------------------------------------------------------------------------
// Audit log

async function loadAudit() {
  const r = await api.authed(`/api/v1/admin/audit?limit=${AUDIT_PAGE}`);
  if (!api.signedIn()) return;
  if (!r.ok) {
    if (!ended(r)) say(api.describe(r), "error");
    return;
  }
  renderAudit(r.data.items);
}

function renderAudit(items) {
  const tbody = $("#audit-rows");
  if (items.length === 0) {
    empty(tbody, 5, "No admin actions yet.");
    return;
  }
  tbody.replaceChildren(...items.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.auditId = String(a.audit_id);
    tr.dataset.action = a.action;
    tr.append(when(a.created_at), cell("td", a.actor), cell("td", a.action), cell("td", a.target), cell("td", a.reason, "reason"));
    return tr;
  }));
}

$("#audit-refresh").addEventListener("click", () => loadAudit());

// ---------------------------------------------------------------------------------------------
// Start

showSignedIn();
$("#signin-username").focus();
