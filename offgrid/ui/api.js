/** Talking to the OffGrid API from the page: JSON calls, Server-Sent-Event streams and uploads
 * with progress. In multi-user mode the login token is kept in sessionStorage (gone with the
 * tab) and sent as a bearer header; no cookie is used, so no other site can send it. */

const TOKEN_KEY = "offgrid.token";

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `The server answered ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

function headers(json) {
  const result = json ? { "Content-Type": "application/json" } : {};
  if (auth.token) result.Authorization = `Bearer ${auth.token}`;
  return result;
}

/** A refusal for want of credentials sends the page back to its login form. */
async function checked(response) {
  if (response.ok) return response;
  const body = await response.json().catch(() => null);
  if (response.status === 401) document.dispatchEvent(new CustomEvent("offgrid:unauthorized"));
  throw new ApiError(response.status, body);
}

export async function call(method, path, body) {
  const json = body !== undefined;
  const response = await checked(await fetch(path, {
    method, headers: headers(json), body: json ? JSON.stringify(body) : undefined }));
  return response.json();
}

/** POST `body` with "stream": true and call onEvent with each event's data as it arrives.
 * Aborting `signal` closes the connection, which is how a generation is stopped. */
export async function stream(path, body, onEvent, signal) {
  const response = await checked(await fetch(path, {
    method: "POST", headers: headers(true), body: JSON.stringify({ ...body, stream: true }),
    signal }));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      for (const line of buffer.slice(0, end).split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
      buffer = buffer.slice(end + 2);
    }
  }
}

/** POST a multipart form, calling onProgress(percent) as it is sent (fetch cannot tell). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    if (auth.token) request.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress((100 * event.loaded) / event.total);
    };
    request.onerror = () => reject(new ApiError(0, null));
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON: say the status */ }
      if (request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body));
    };
    request.send(form);
  });
}

/** Call `poll` every `ms` until it returns true. */
export async function until(poll, ms = 500) {
  while (!(await poll())) await new Promise((resolve) => { setTimeout(resolve, ms); });
}
