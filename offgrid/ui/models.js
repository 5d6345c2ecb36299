/** The models screen: the models folder's models with size and quantization, delete, and pull
 * from the Hugging Face Hub with a progress bar; and the statistics in the top bar. */

import { call, until } from "./api.js";
import { $, bytes, confirmButton, h, progress, toast } from "./dom.js";

export function initModels(onChange) {
  $("pull-form").addEventListener("submit", (event) => {
    event.preventDefault();
    pull($("pull-repository").value.trim(), $("pull-file").value.trim() || null, onChange);
  });
}

export async function showModels(onChange) {
  const { data } = await call("GET", "/v1/models");
  $("model-list").replaceChildren(...data.map((model) => h("tr", {},
    h("td", {}, model.id, model.embedding ? h("span", { class: "note" }, "embedding") : null),
    h("td", {}, bytes(model.size_bytes)), h("td", {}, model.quantization ?? ""),
    h("td", {}, model.parameters ? `${(model.parameters / 1e6).toFixed(0)} M` : ""),
    h("td", {}, model.context_length ? String(model.context_length) : ""),
    h("td", {}, confirmButton("Delete", () => remove(model.id, onChange),
                              { "aria-label": `Delete ${model.id}` })))));
  return data;
}

async function remove(id, onChange) {
  await call("DELETE", `/v1/models/${encodeURIComponent(id)}`).catch((error) => toast(error.message));
  onChange();
}

async function pull(repository, fileName, onChange) {
  const bar = $("pull-progress");
  const status = $("pull-status");
  try {
    const job = await call("POST", "/v1/models/download", { repository, file_name: fileName });
    await until(async () => {
      const [state] = (await call("GET", `/v1/models/download/progress?id=${encodeURIComponent(job.id)}`)).data;
      progress(bar, state.percent);
      status.textContent = `${state.file_name || repository}: ${state.status}`;
      if (["failed", "cancelled"].includes(state.status)) throw new Error(state.error || state.status);
      return state.status === "completed";
    }, 1000);
    onChange();
  } catch (error) {
    status.textContent = `${repository}: ${error.message}`;
  } finally {
    bar.hidden = true;
  }
}

let last = null; // the previous reading, for tokens per second between two

/** CPU, memory and the tokens per second since the previous reading. */
export async function showStats() {
  const stats = await call("GET", "/v1/system/stats");
  const now = performance.now();
  const rate = last ? (stats.tokens_generated - last.tokens) / ((now - last.at) / 1000) : 0;
  last = { tokens: stats.tokens_generated, at: now };
  $("stats").textContent = `CPU ${stats.cpu_percent.toFixed(0)}% · ${bytes(stats.memory_bytes)}`
    + ` · ${rate.toFixed(1)} tokens/s`;
}
