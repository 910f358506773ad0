// The admin page's session and HTTP calls: a dependency-free ES module, no build step.
//
// Token storage (docs/OPERATIONS.md, "The admin page"): the access token and the refresh token
// live in this module's memory only — never in localStorage, sessionStorage or a cookie — so
// they end with the tab, and a reload signs the admin out. A 401 from an authenticated call
// is answered by one refresh (`POST /api/v1/auth/refresh`, single use) and one retry; if the
// refresh fails too, the session has ended. Signing out revokes the refresh token
// (`POST /api/v1/auth/logout`).

const NETWORK_MESSAGE = "Cannot reach the service. Check your connection.";

const session = { access: null, refresh: null, username: null };
let refreshing = null; // the one refresh in flight, shared by concurrent 401s

export function signedIn() {
  return session.access !== null;
}

export function username() {
  return session.username;
}

function retryAfterSeconds(header) {
  if (!header) return null;
  const seconds = Number(header);
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : null;
}

/** One fetch of a JSON route; never throws. {ok, status, data, error, retryAfter}. */
async function call(path, { method = "GET", body, token = null } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    const error = { code: "NETWORK", message: NETWORK_MESSAGE };
    return { ok: false, status: 0, data: null, error };
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  const out = { ok: res.ok, status: res.status, data, error: null };
  out.retryAfter = retryAfterSeconds(res.headers.get("Retry-After"));
  if (!res.ok) {
    const error = data && data.error;
    out.error = error && typeof error.message === "string"
      ? error
      : { code: `HTTP_${res.status}`, message: `The request failed (HTTP ${res.status}).` };
  }
  return out;
}

/** The message to show for a failed call: the API's own, with a wait when it gave one. */
export function describe(result) {
  if (result.status === 429) return `Slow down — try again in ${result.retryAfter ?? 1} s.`;
  if (result.retryAfter) return `${result.error.message} Try again in ${result.retryAfter} s.`;
  return result.error.message;
}

function keep(data, name) {
  session.access = data.access_token;
  session.refresh = data.refresh_token ?? null;
  if (name !== undefined) session.username = name;
}

export function forget() {
  session.access = null;
  session.refresh = null;
  session.username = null;
}

/** Log in; the result of the login call (the session is kept only when it worked). */
export async function login(name, password) {
  const r = await call("/api/v1/auth/login", {
    method: "POST",
    body: { username: name, password },
  });
  if (r.ok) keep(r.data, name);
  return r;
}

/** End the session here and revoke its refresh token at the service (best effort). */
export async function logout() {
  const refresh = session.refresh;
  forget();
  if (!refresh) return;
  await call("/api/v1/auth/logout", { method: "POST", body: { refresh_token: refresh } });
}

async function renew() {
  const refresh = session.refresh;
  if (!refresh) return false;
  session.refresh = null; // single use, whatever the answer
  const body = { refresh_token: refresh };
  const r = await call("/api/v1/auth/refresh", { method: "POST", body });
  if (!r.ok) return false;
  keep(r.data);
  return true;
}

/** An authenticated call. A 401 is answered by one refresh and one retry. */
export async function authed(path, options = {}) {
  const token = session.access;
  if (!token) {
    const error = { code: "UNAUTHENTICATED", message: "Not signed in." };
    return { ok: false, status: 401, data: null, error };
  }
  const r = await call(path, { ...options, token });
  if (r.status !== 401) return r;
  if (session.access === token) {
    refreshing = refreshing || renew().finally(() => {
      refreshing = null;
    });
    await refreshing;
  } else if (refreshing) {
    await refreshing;
  }
  if (!session.access || session.access === token) return r;
  return call(path, { ...options, token: session.access });
}
