// The admin page's confirmation dialog: every action asks for a reason (1–500 characters, as
// the API requires; checked here first, and the API's own refusal is shown as well), adjust
// also for points (a non-zero integer within ±1,000,000).

import { describe } from "./admin-api.js";

const MAX_REASON = 500;
const MAX_POINTS = 1_000_000;

const $ = (selector) => document.querySelector(selector);
const dialog = $("#confirm");
const form = $("#confirm-form");
const reasonInput = $("#confirm-reason");
const pointsField = $("#confirm-points-field");
const pointsInput = $("#confirm-points");
const errorLine = $("#confirm-error");
const okButton = $("#confirm-ok");

let current = null; // {run, points, resolve}

function fail(text, input) {
  errorLine.textContent = text;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

/** The reason as the API counts it (trimmed), or an error message. */
export function checkReason(raw) {
  const reason = raw.trim();
  if (reason.length < 1 || reason.length > MAX_REASON) {
    return { error: `A reason is required: 1–${MAX_REASON} characters.` };
  }
  return { reason };
}

function checkPoints(raw) {
  const text = raw.trim();
  const points = Number(text);
  if (!/^[-+]?\d+$/.test(text) || points === 0 || Math.abs(points) > MAX_POINTS) {
    return { error: `Points: a non-zero whole number within ±${MAX_POINTS.toLocaleString()}.` };
  }
  return { points };
}

function finish(value) {
  const done = current;
  current = null;
  if (dialog.open) dialog.close();
  if (done) done.resolve(value);
}

/**
 * Ask for a reason (and points when `points`), then `run(reason, points)` — an API call's
 * result. Resolves to that result when it succeeded or ended the session (401/403: the caller
 * decides), to null when cancelled; any other refusal is shown in the dialog, which stays open.
 */
export function confirmAction({ title, text, points = false, run }) {
  if (current) finish(null);
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  reasonInput.value = "";
  pointsInput.value = "";
  pointsField.hidden = !points;
  errorLine.textContent = "";
  for (const input of [reasonInput, pointsInput]) input.removeAttribute("aria-invalid");
  okButton.disabled = false;
  dialog.showModal();
  (points ? pointsInput : reasonInput).focus();
  return new Promise((resolve) => {
    current = { run, points, resolve };
  });
}

form.addEventListener("input", (event) => {
  event.target.removeAttribute("aria-invalid");
  errorLine.textContent = "";
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const job = current;
  if (!job || okButton.disabled) return;
  let points;
  if (job.points) {
    const checked = checkPoints(pointsInput.value);
    if (checked.error) return fail(checked.error, pointsInput);
    points = checked.points;
  }
  const checked = checkReason(reasonInput.value);
  if (checked.error) return fail(checked.error, reasonInput);
  okButton.disabled = true;
  errorLine.textContent = "";
  try {
    const result = await job.run(checked.reason, points);
    if (current !== job) return;
    if (result.ok || result.status === 401 || result.status === 403) {
      finish(result);
    } else {
      fail(describe(result));
    }
  } finally {
    okButton.disabled = false;
  }
});

$("#confirm-cancel").addEventListener("click", () => finish(null));
dialog.addEventListener("cancel", () => finish(null)); // Escape
