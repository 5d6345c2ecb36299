/** The chat screen: the session list (new, rename, delete, search), the open session's
 * conversation, and its next turn streamed in, with a stop button. Sessions are kept by the
 * server, so a conversation is there again after a reload or a server restart. The open
 * session's name is the page's #fragment, so a reload opens it again. */

import { ApiError, call, stream } from "./api.js";
import { $, confirmButton, h, toast } from "./dom.js";
import { render } from "./markdown.js";

const MAX_TOKENS = 512; // when the answer-length box is empty
let current = null; // the open session, as the server has it
let running = null; // the AbortController of the answer being written
let lastQuestion = ""; // what Regenerate asks again
let defaultModel = null;

const path = (name, tail = "") => `/v1/sessions/${encodeURIComponent(name)}${tail}`;

export function initChat(models, serverDefault) {
  defaultModel = serverDefault;
  setModels(models);
  $("new-session").addEventListener("click", () => { openSession(null); });
  let searching;
  $("session-search").addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(showSessions, 200);
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = $("prompt");
    if (prompt.value.trim() && !running) {  // one answer at a time
      send(prompt.value);
      prompt.value = "";
    }
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape") {
      running?.abort();
    }
  });
  $("stop").addEventListener("click", () => running?.abort());
  $("model-picker").addEventListener("change", changeModel);
  $("show-sessions").addEventListener("click", () => showSessionList(!$("sessions").classList.contains("shown")));
  const opened = decodeURIComponent(location.hash.slice(1));
  return Promise.all([showSessions(), opened ? openSession(opened) : null]);
}

/** The chat models (not the embedding-only ones) in the picker. */
export function setModels(models) {
  const chosen = $("model-picker").value || current?.model || defaultModel;
  $("model-picker").replaceChildren(...models.filter((model) => !model.embedding)
    .map((model) => h("option", { value: model.id, selected: model.id === chosen }, model.id)));
}

/** The session list; a refusal (a guest may not keep sessions) is said, not thrown. */
export async function showSessions() {
  const search = $("session-search").value.trim();
  const query = search ? `?search=${encodeURIComponent(search)}` : "";
  try {
    const { sessions } = await call("GET", `/v1/sessions${query}`);
    $("session-list").replaceChildren(...sessions.map(sessionItem));
  } catch (error) {
    toast(error.message);
  }
}

function sessionItem(session) {
  const item = h("li", {},
    h("button", { type: "button", class: "open", "aria-current": session.name === current?.name ? "true" : false,
                  onclick: () => openSession(session.name) }, session.name),
    h("button", { type: "button", "aria-label": `Rename ${session.name}`,
                  onclick: () => rename(item, session.name) }, "Rename"),
    confirmButton("Delete", () => removeSession(session.name),
                  { "aria-label": `Delete ${session.name}` }));
  return item;
}

function rename(item, name) {
  const input = h("input", { value: name, "aria-label": "New name", maxlength: 64 });
  input.addEventListener("keydown", async (event) => {
    if (event.key === "Escape") showSessions();
    if (event.key !== "Enter") return;
    try {
      const renamed = await call("PATCH", path(name), { name: input.value.trim() });
      if (current?.name === name) setCurrent(renamed);
      await showSessions();
    } catch (error) {
      toast(error.message);
    }
  });
  item.replaceChildren(input);
  input.select();
}

async function removeSession(name) {
  await call("DELETE", path(name)).catch((error) => toast(error.message));
  if (current?.name === name) openSession(null);
  showSessions();
}

function setCurrent(session) {
  current = session;
  history.replaceState(null, "", session ? `#${encodeURIComponent(session.name)}` : "#");
}

/** On a phone-sized screen the session list shows at the press of a button. */
function showSessionList(shown) {
  $("sessions").classList.toggle("shown", shown);
  $("show-sessions").setAttribute("aria-expanded", String(shown));
}

/** Show session `name`'s conversation (null: a new, empty chat). */
export async function openSession(name) {
  running?.abort();
  showSessionList(false);
  lastQuestion = "";
  $("messages").replaceChildren();
  if (!name) {
    setCurrent(null);
  } else {
    try {
      setCurrent(await call("GET", path(name)));
      const { messages } = await call("GET", path(name, "/messages"));
      for (const message of messages) addMessage(message);
      lastQuestion = messages.findLast((message) => message.role === "user")?.content || "";
      markLastAnswer();
    } catch (error) {
      setCurrent(null);
      toast(error.message);
    }
  }
  if (current) $("model-picker").value = current.model || defaultModel;  // null: the default
  showSessions();
  $("prompt").focus();
}

async function changeModel() {
  if (!current) return;
  try {
    setCurrent(await call("PATCH", path(current.name), { model: $("model-picker").value }));
  } catch (error) {
    toast(error.message);
  }
}

/** A new session named after its first words, a unique tail making clashes unlikely. */
async function createSession(content) {
  const words = content.toLowerCase().match(/[a-z0-9]+/g)?.slice(0, 4).join("-") || "chat";
  const name = `${words.slice(0, 40)}-${Date.now().toString(36)}`;
  setCurrent(await call("POST", "/v1/sessions", { name, model: $("model-picker").value || null }));
}

function addMessage(message) {
  const node = h("li", { class: `message ${message.role}` },
    h("div", { class: "meta" }, message.role === "user" ? "You" : "Assistant"),
    h("div", { class: "body" }));
  fill(node, message.content);
  if (message.citations?.length) node.append(sources(message.citations));
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

/** The user's text as it was typed; the model's as Markdown. Both only ever as text. */
function fill(node, text) {
  const body = node.querySelector(".body");
  if (node.classList.contains("user")) body.replaceChildren(h("p", { class: "plain" }, text));
  else body.replaceChildren(...render(text));
}

function note(node, text) {
  node.querySelector(".meta").append(h("span", { class: "note" }, text));
}

/** The numbered sources an answer was given, each opening its passage. */
function sources(citations) {
  return h("ol", { class: "sources", "aria-label": "Sources" }, citations.map((citation) => h("li", {},
    h("button", { type: "button", onclick: () => openPassage(citation) },
      `[${citation.index}] ${citation.document_name}`))));
}

async function openPassage(citation) {
  let text = citation.text;
  try {
    const chunk = await call("GET", `/v1/documents/${citation.document_id}/chunks/${citation.chunk_index}`);
    text = chunk.content;
  } catch {
    text += "\n\n(The document is no longer in the knowledge base; this is the passage as cited.)";
  }
  $("passage-title").textContent = `[${citation.index}] ${citation.document_name}`;
  $("passage-text").textContent = text;
  $("passage").showModal();
}

/** Regenerate sits on the last answer: it asks the last question again, as a new turn. */
function markLastAnswer() {
  document.querySelectorAll(".regenerate").forEach((button) => button.remove());
  const answers = document.querySelectorAll("#messages .assistant");
  if (answers.length && lastQuestion) {
    answers[answers.length - 1].append(h("button", { type: "button", class: "regenerate",
      onclick: () => send(lastQuestion) }, "Regenerate"));
  }
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  if (!on) $("prompt").focus();
}

async function send(content) {
  if (running) return;
  const controller = new AbortController();
  running = controller;
  busy(true);
  const question = addMessage({ role: "user", content });
  const answer = addMessage({ role: "assistant", content: "" });
  answer.classList.add("writing");
  let text = "";
  const started = performance.now();
  try {
    if (!current) await createSession(content);
    lastQuestion = content;
    await stream(path(current.name, "/generate"), {
      content, max_tokens: Number($("max-tokens").value) || MAX_TOKENS, use_knowledge_base: $("use-kb").checked,
    }, (event) => {
      if (event.type === "delta") {
        text += event.content;
        fill(answer, text);
        answer.scrollIntoView({ block: "end" });
      } else if (event.type === "done") {
        finished(answer, event, (performance.now() - started) / 1000);
      } else if (event.type === "error") {
        throw new ApiError(500, event);
      }
    }, controller.signal);
  } catch (error) {
    const stopped = error.name === "AbortError";
    note(answer, stopped ? "stopped, not kept" : `failed: ${error.message}`);
    answer.classList.add(stopped ? "stopped" : "failed");
    question.classList.add("unkept");
  } finally {
    answer.classList.remove("writing");
    if (running === controller) {
      running = null;
      busy(false);
    }
    markLastAnswer();
    showSessions();
  }
}

function finished(answer, event, seconds) {
  fill(answer, event.message.content);
  if (event.message.citations?.length) answer.append(sources(event.message.citations));
  const tokens = event.usage.completion_tokens;
  note(answer, `${tokens} tokens, ${(tokens / seconds).toFixed(1)} tokens/s`);
}
