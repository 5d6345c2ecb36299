/** The account screen of a multi-user server: who is logged in, their API keys (create, with
 * the secret shown once, and revoke), and for an admin the users and their roles. */

import { call } from "./api.js";
import { $, confirmButton, h, toast } from "./dom.js";

const ROLES = ["guest", "user", "admin"];
let me = null;

const date = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "never");

export function initAccount(user) {
  me = user;
  $("user-role").replaceChildren(...ROLES.map((role) => h("option", { selected: role === "user" }, role)));
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const key = await call("POST", `/v1/users/${me.id}/api-keys`, { name: $("key-name").value });
      $("new-key").textContent = `Your new key (shown only now): ${key.key}`;
      $("key-form").reset();
    });
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      await call("POST", "/v1/users", { username: $("user-name").value,
        password: $("user-password").value, role: $("user-role").value });
      $("user-form").reset();
    });
  });
}

/** Do `change`, say what went wrong if it did, and show the screen again. */
async function act(change) {
  try {
    await change();
  } catch (error) {
    toast(error.message);
  }
  showAccount();
}

export async function showAccount() {
  $("me").textContent = `Logged in as ${me.username} (${me.role})`;
  const { data: keys } = await call("GET", `/v1/users/${me.id}/api-keys`);
  $("key-list").replaceChildren(...keys.filter((key) => !key.revoked_at).map((key) => h("tr", {},
    h("td", {}, key.name), h("td", {}, key.prefix), h("td", {}, date(key.last_used_at)),
    h("td", {}, confirmButton("Revoke", () => act(() => call("DELETE",
      `/v1/users/${me.id}/api-keys/${key.id}`)), { "aria-label": `Revoke ${key.name}` })))));
  $("admin").hidden = me.role !== "admin";
  if (me.role === "admin") showUsers();
}

async function showUsers() {
  const { data: users } = await call("GET", "/v1/users");
  $("user-list").replaceChildren(...users.map((user) => {
    const role = h("select", { "aria-label": `Role of ${user.username}`, disabled: user.id === me.id },
      ROLES.map((name) => h("option", { selected: name === user.role }, name)));
    role.addEventListener("change", () => act(() => call("PUT", `/v1/users/${user.id}/role`,
      { role: role.value })));
    return h("tr", {}, h("td", {}, user.username), h("td", {}, role),
      h("td", {}, String(user.tokens_used_today)),
      h("td", {}, user.id === me.id ? null : confirmButton("Delete", () => act(() => call("DELETE",
        `/v1/users/${user.id}`)), { "aria-label": `Delete ${user.username}` })));
  }));
}
