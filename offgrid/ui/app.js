/** The page's start: the server's mode (single-user, or multi-user with a login form), the
 * screens behind the tabs, and the statistics in the top bar. */

import { auth, call } from "./api.js";
import { initAccount, showAccount } from "./account.js";
import { initAgents, showAgents } from "./agents.js";
import { initChat, setModels } from "./chat.js";
import { $, toast } from "./dom.js";
import { initKnowledge, showKnowledge } from "./knowledge.js";
import { initModels, showModels, showStats } from "./models.js";

const SCREENS = { chat: null, knowledge: showKnowledge, agents: showAgents,
                  models: () => showModels(refreshModels), account: showAccount };
const STATS_MS = 5000;

async function refreshModels() {
  setModels(await showModels(refreshModels));
}

function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    if (tab.dataset.tab === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
    $(tab.dataset.tab).hidden = tab.dataset.tab !== name;
  }
  SCREENS[name]?.()?.catch((error) => toast(error.message));
}

function showLogin(message = "") {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-form").elements.username.focus();
}

async function logIn(event) {
  event.preventDefault();
  const form = event.target.elements;
  try {
    const { access_token: token } = await call("POST", "/v1/auth/login", {
      username: form.username.value, password: form.password.value });
    auth.token = token;
    location.reload();  // start afresh as this user
  } catch (error) {
    showLogin(error.message);
  }
}

async function logOut() {
  await call("POST", "/v1/auth/logout").catch(() => null);  // an expired token ends anyway
  auth.token = null;
  location.hash = "";
  showLogin();
}

async function start() {
  $("login-form").addEventListener("submit", logIn);
  document.addEventListener("offgrid:unauthorized", () => showLogin("Please log in."));
  const config = await call("GET", "/v1/system/config");
  if (config.multi_user_mode) {
    if (!auth.token) return showLogin();
    const me = await call("GET", "/v1/users/me");
    initAccount(me);
    document.querySelector("[data-tab=account]").hidden = false;
    $("logout").hidden = false;
    $("logout").addEventListener("click", logOut);
  }
  $("login").hidden = true;
  $("app").hidden = false;
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  initKnowledge();
  initAgents();
  initModels(refreshModels);
  const { data: models } = await call("GET", "/v1/models");
  await initChat(models, config.default_model);
  const stats = () => showStats().catch(() => null);  // a missed reading waits for the next
  stats();
  setInterval(stats, STATS_MS);
}

start().catch((error) => {
  if (error.status !== 401) toast(error.message);
});
