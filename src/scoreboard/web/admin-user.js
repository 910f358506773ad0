// The admin page's user panel: a user looked up by username or user id — status, boards,
// open flags, recent events (each voidable unless voided already or itself a compensation),
// ban/unban/quarantine/release and adjust. After every action the view is fetched again and
// shows the new state; a refusal shows the API's message (admin-dialog.js).

import * as api from "./admin-api.js";
import { confirmAction } from "./admin-dialog.js";
import { $, cell, empty, numberFormat, say, when } from "./admin-dom.js";

const EVENTS_PAGE = 20;
const userPath = (user) => `/api/v1/admin/users/${encodeURIComponent(user.user_id)}`;

/** Set by admin.js: `ended(result)` (a 401/403 ends the session; true when it did) and
 * `loadAudit()`. */
export const hooks = { ended: () => false, loadAudit: async () => {} };

const state = {
  user: null, // the user view shown, or null
  events: [], // the user's events shown, newest first
  eventsCursor: null,
  seq: 0, // bumps on every new lookup: answers for an older one are dropped
};

/** The id of the user shown, or null. */
export function shownUserId() {
  return state.user ? state.user.user_id : null;
}

/** Forget the user shown (signing out). */
export function clearUser() {
  state.seq += 1;
  state.user = null;
  state.events = [];
  state.eventsCursor = null;
  $("#user").hidden = true;
}

export async function lookUp(by, value) {
  const seq = ++state.seq;
  const path = by === "username"
    ? `/api/v1/admin/users?username=${encodeURIComponent(value)}`
    : `/api/v1/admin/users/${encodeURIComponent(value)}`;
  say("Looking up…");
  const r = await api.authed(path);
  if (seq !== state.seq || !api.signedIn()) return;
  if (!r.ok) {
    if (!hooks.ended(r)) say(api.describe(r), "error");
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

export async function reloadUser() {
  if (!state.user) return;
  const seq = state.seq;
  const r = await api.authed(userPath(state.user));
  if (seq !== state.seq || !api.signedIn()) return;
  if (!r.ok) {
    if (!hooks.ended(r)) say(api.describe(r), "error");
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
    tr.append(
      cell("td", b.scope),
      cell("td", b.period),
      cell("td", numberFormat.format(b.score), "score"),
      cell("td", rank, "score"),
    );
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
    if (!hooks.ended(r)) status.textContent = `The events could not be read: ${api.describe(r)}`;
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
  button.title = voided
    ? "Already voided"
    : compensation ? "A compensation cannot be voided" : "Void this event";
  button.addEventListener("click", () => voidEvent(e));
  const last = cell("td", null, "actions");
  last.append(button);
  tr.append(
    cell("td", `#${e.event_id}`),
    when(e.created_at),
    cell("td", e.action_type),
    cell("td", points, "score"),
    cell("td", e.source),
    cell("td", stateText, "state"),
    last,
  );
  return tr;
}

$("#events-more").addEventListener("click", () => loadEvents(false));

async function voidEvent(e) {
  const done = await confirmAction({
    title: `Void event #${e.event_id}`,
    text: `${e.action_type}, ${e.points} points: a compensating event takes them back on ` +
      "every board.",
    run: (reason) => api.authed(`/api/v1/admin/events/${e.event_id}/void`, {
      method: "POST",
      body: { reason },
    }),
  });
  if (!done || hooks.ended(done)) return;
  say(`Event #${e.event_id} voided.`, "ok");
  await Promise.all([reloadUser(), hooks.loadAudit()]);
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
      run: (reason) => api.authed(`${userPath(user)}/${action}`, {
        method: "POST",
        body: { reason },
      }),
    });
    if (!done || hooks.ended(done)) return;
    say(`${user.display_name}: ${done.data.status}.`, "ok");
    if (!state.user || state.user.user_id !== user.user_id) return;
    renderUser(done.data); // the answer is the user's view afterwards
    await Promise.all([loadEvents(true), hooks.loadAudit()]);
  });
}

$("#adjust-btn").addEventListener("click", async () => {
  const user = state.user;
  if (!user) return;
  const done = await confirmAction({
    title: `Adjust ${user.display_name}'s score`,
    text: "Counts on every board that counts all actions, in the current period.",
    points: true,
    run: (reason, points) => api.authed(`${userPath(user)}/adjust`, {
      method: "POST",
      body: { points, reason },
    }),
  });
  if (!done || hooks.ended(done)) return;
  const total = numberFormat.format(done.data.new_score);
  say(`Adjusted by ${done.data.awarded_points}: the score is ${total}.`, "ok");
  await Promise.all([reloadUser(), hooks.loadAudit()]);
});
