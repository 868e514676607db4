// The pages' one door to REST API v1. The session is the HttpOnly cookie that POST /api/v1/session
// sets (sign in) and POST /api/v1/logout clears; every request that changes data sends
// X-Requested-With (the server's CSRF guard).

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return `request failed (${status})`;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** JSON request: api("GET", "/projects"), api("POST", "/projects", {...}). Paths are under /api/v1.
 *  Resolves to the parsed body (null for 204); rejects with ApiError(status, detail, body). */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Requested-With": "listenloop" } };
  if (body instanceof FormData || body instanceof URLSearchParams) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  const data = await parse(response);
  if (!response.ok) throw new ApiError(response.status, detailOf(data, response.status), data);
  return data;
}

/** Sign in: sets the session cookie; resolves to the user {id, username, role}. */
export function login(username, password) {
  return api("POST", "/session", new URLSearchParams({ username, password }));
}

/** Sign out: revokes the session's token and clears the cookie. */
export function logout() {
  return api("POST", "/logout");
}

/** Multipart upload with progress: onProgress(fraction 0..1). Resolves to the parsed body;
 *  rejects with ApiError (an upload report with `rejected` rides on error.body). */
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader("X-Requested-With", "listenloop");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "network error during upload", null));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = xhr.responseText;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, detailOf(data, xhr.status), data));
    };
    xhr.send(formData);
  });
}
