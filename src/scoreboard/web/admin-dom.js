// The admin page's small DOM helpers: everything from data is set as text, never as HTML.

export const $ = (selector) => document.querySelector(selector);
export const numberFormat = new Intl.NumberFormat();

export function say(text, kind = "info") {
  const el = $("#message");
  el.textContent = text;
  el.dataset.kind = kind;
}

export function cell(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined && text !== null) el.textContent = String(text);
  if (className) el.className = className;
  return el;
}

export function when(iso) {
  const date = new Date(iso);
  const el = cell("td", Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
  el.dataset.at = iso;
  return el;
}

export function empty(tbody, columns, text) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  const td = cell("td", text);
  td.colSpan = columns;
  tr.append(td);
  tbody.replaceChildren(tr);
}
