// What every part of the settings page shares: the admin token (kept in
// this tab's session storage — never in a URL or a cookie), API calls that
// carry it, messages, and configuration edits through PATCH /api/config
// (validate → apply → confirm or roll back, as curl and `edgecam config`).
export const $ = (id) => document.getElementById(id);
export const KEY = "edgecam-admin-token";

/// The file's revision as last read (If-Match for whole-file writes).
export const file = { etag: null };

export function say(id, text, kind = "") {
  const element = $(id);
  element.textContent = text;
  element.className = `message ${kind}`;
}

/// Called when the token is refused: the page goes back to signing in.
let onRefused = () => {};
export function whenRefused(action) {
  onRefused = action;
}

/// An API call with the token. A refusal signs out and throws.
export async function api(method, path, { body, headers = {} } = {}) {
  const token = sessionStorage.getItem(KEY);
  const response = await fetch(path, {
    method,
    body,
    cache: "no-store",
    headers: { Authorization: `Bearer ${token}`, ...headers },
  });
  if (response.status === 401) {
    onRefused("the token was refused; sign in again");
    throw new Error("signed out");
  }
  return response;
}

/// The reply's JSON (every API error is `{"error": …}`), or its text.
export async function failure(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { error: text || response.statusText };
  }
}

/// The running configuration as JSON: every setting, defaults filled in,
/// secrets redacted.
export async function settings() {
  const response = await api("GET", "/api/config", { headers: { Accept: "application/json" } });
  return response.json();
}

export function describeChanges(changes) {
  if (!changes.length) return "nothing changes";
  return changes
    .map((c) => {
      const effect = c.effect === "restart" ? `restarts ${c.outputs.join(", ")}` : {
        live: "live",
        camera: "rebuilds the camera pipeline",
        process: "needs a restart of edgecam",
      }[c.effect] || c.effect;
      const shown = (value) => (c.key.startsWith("auth.") ? "…" : JSON.stringify(value));
      return `${c.key}: ${shown(c.from)} → ${shown(c.to)} (${effect})`;
    })
    .join("\n");
}

/// Listeners told after the file changed through one of the page's parts.
const changed = [];
export function whenChanged(listener) {
  changed.push(listener);
}
export async function fileChanged() {
  await Promise.all(changed.map((listener) => listener()));
}

/// A TOML fragment merged into the file (one setting or a few). One key
/// changed by someone else meanwhile does not conflict with these: the
/// revision is read again and the fragment sent once more.
export async function patch(fragment, message) {
  const revision = async () => (await api("GET", "/api/config")).headers.get("ETag") || "";
  const send = (tag) => api("PATCH", "/api/config", { body: fragment, headers: { "If-Match": tag } });
  let response = await send(file.etag || await revision());
  if (response.status === 412) response = await send(await revision());
  const reply = await failure(response);
  if (response.ok) {
    say(message, describeChanges(reply.changes), "ok");
    await fileChanged();
  } else {
    say(message, reply.error, "error");
  }
  return response.ok;
}

/// A TOML string (basic strings share JSON's escapes).
export const tomlString = (text) => JSON.stringify(String(text));

export function element(tag, properties = {}, ...children) {
  const made = Object.assign(document.createElement(tag), properties);
  made.append(...children);
  return made;
}
