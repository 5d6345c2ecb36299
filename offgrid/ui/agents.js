/** The agents screen: run a task and watch it work: its status, the text it writes, each step
 * (a tool call with its arguments and result) as it is taken, then its answer. */

import { call, stream } from "./api.js";
import { $, h } from "./dom.js";
import { render } from "./markdown.js";

let running = null;

export function initAgents() {
  $("agent-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!running) run($("agent-prompt").value);
  });
  $("agent-stop").addEventListener("click", () => running?.abort());
}

export async function showAgents() {
  const { tools } = await call("GET", "/v1/agents/tools");  // the ones that are on
  const names = tools.map((tool) => tool.name).join(", ");
  if (!running) $("agent-status").textContent = `Tools on: ${names || "none"}`;
}

function stepNode(step) {
  const parts = [h("div", { class: "meta" }, step.tool_name ? `${step.type}: ${step.tool_name}` : step.type,
    h("span", { class: "note" }, `${step.duration_ms} ms`))];
  if (step.content) parts.push(h("p", { class: "plain" }, step.content));
  if (step.type === "tool_call") parts.push(h("pre", {}, JSON.stringify(step.tool_args, null, 2)));
  if (step.tool_result != null) {
    parts.push(h("pre", { class: "result" }, typeof step.tool_result === "string"
      ? step.tool_result : JSON.stringify(step.tool_result, null, 2)));
  }
  return h("li", { class: "step" }, parts);
}

async function run(prompt) {
  const controller = new AbortController();
  running = controller;
  $("agent-run").hidden = true;
  $("agent-stop").hidden = false;
  $("agent-steps").replaceChildren();
  $("agent-output").replaceChildren();
  const live = $("agent-live");
  live.textContent = "";
  const status = $("agent-status");
  try {
    await stream("/v1/agents/run", { prompt, tool_choice: "required" }, (event) => {
      if (event.type === "status") status.textContent = event.message;
      else if (event.type === "token") live.textContent += event.content;
      else if (event.type === "step") {
        live.textContent = "";
        $("agent-steps").append(stepNode(event.step));
      } else if (event.type === "error") status.textContent = `Failed: ${event.error.message}`;
      else if (event.type === "done") {
        live.textContent = "";
        if (event.finish_reason !== "error") status.textContent = `Done (${event.finish_reason})`;
        $("agent-output").replaceChildren(...render(event.output));
      }
    }, controller.signal);
  } catch (error) {
    status.textContent = error.name === "AbortError" ? "Stopped" : `Failed: ${error.message}`;
  } finally {
    running = null;
    $("agent-run").hidden = false;
    $("agent-stop").hidden = true;
  }
}
