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
import { $, cell, empty, say, when } from "./admin-dom.js";
import * as userPanel from "./admin-user.js";

const FLAGS_REFRESH_MS = 5_000;
const AUDIT_PAGE = 15;
const NOT_ADMIN = "This account is not an admin.";
const ENDED = "Your session has ended — please sign in again.";

let flagsTimer = null;

/** A flag's detail (the numbers that tripped its rule) as one line of text. */
function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  if (typeof detail !== "object") return String(detail);
  return Object.entries(detail)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(", ");
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
    userPanel.clearUser();
    clearInterval(flagsTimer);
    flagsTimer = null;
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
    flagsTimer = setInterval(() => {
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
  status.textContent = r.data.next_cursor
    ? `The newest ${items.length} open flags (there are more).`
    : items.length === 1 ? "1 open flag." : `${items.length} open flags.`;
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
  open.addEventListener("click", () => userPanel.lookUp("user_id", flag.user_id));
  user.append(open);
  const buttons = cell("td", null, "actions");
  const resolutions = [["dismiss", "Dismiss"], ["ban", "Ban"], ["quarantine", "Quarantine"]];
  for (const [action, label] of resolutions) {
    const b = cell("button", label, action === "ban" ? "danger" : "");
    b.type = "button";
    b.dataset.action = action;
    b.addEventListener("click", () => resolveFlag(flag, action, label));
    buttons.append(b);
  }
  tr.append(
    when(flag.created_at),
    user,
    cell("td", flag.rule),
    cell("td", detailText(flag.detail), "detail"),
    buttons,
  );
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
  const shown = userPanel.shownUserId() === flag.user_id;
  await Promise.all([loadFlags(), loadAudit(), shown ? userPanel.reloadUser() : null]);
}

$("#flags-refresh").addEventListener("click", () => loadFlags());

// ---------------------------------------------------------------------------------------------
// User lookup and view


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
    tr.append(
      when(a.created_at),
      cell("td", a.actor),
      cell("td", a.action),
      cell("td", a.target),
      cell("td", a.reason, "reason"),
    );
    return tr;
  }));
}

$("#audit-refresh").addEventListener("click", () => loadAudit());

// ---------------------------------------------------------------------------------------------
// Start

userPanel.hooks.ended = ended;
userPanel.hooks.loadAudit = loadAudit;
showSignedIn();
$("#signin-username").focus();
