/** The knowledge-base screen: upload a document (a bar for the upload, then for its chunks'
 * embedding, an async ingest job the page polls), the documents the caller may see, delete. */

import { call, until, upload } from "./api.js";
import { $, bytes, confirmButton, h, progress, toast } from "./dom.js";

export function initKnowledge() {
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ingest($("upload-file").files[0]);
  });
}

export async function showKnowledge() {
  const [{ documents }, status] = await Promise.all([
    call("GET", "/v1/documents"), call("GET", "/v1/rag/status")]);
  $("rag-status").textContent = status.enabled
    ? `On, with ${status.embedding_model}: ${status.documents} documents, ${status.chunks} chunks`
    : "The knowledge base is off (an admin turns it on with POST /v1/rag/enable).";
  $("document-list").replaceChildren(...documents.map((document) => h("tr", {},
    h("td", {}, document.name), h("td", {}, String(document.chunks)),
    h("td", {}, bytes(document.size)),
    h("td", {}, confirmButton("Delete", () => remove(document.id),
                              { "aria-label": `Delete ${document.name}` })))));
}

async function remove(id) {
  await call("DELETE", `/v1/documents/${id}`).catch((error) => toast(error.message));
  showKnowledge();
}

async function ingest(file) {
  const bar = $("upload-progress");
  const status = $("upload-status");
  const form = new FormData();
  form.append("file", file);
  form.append("async", "true");
  try {
    status.textContent = `Uploading ${file.name}`;
    const { job } = await upload("/v1/documents/ingest", form, (percent) => progress(bar, percent));
    status.textContent = `Reading and embedding ${file.name}`;
    await until(async () => {
      const state = await call("GET", `/v1/documents/jobs/${job.id}`);
      progress(bar, state.percent);
      if (state.status === "failed") throw new Error(state.error);
      return state.status === "completed";
    });
    status.textContent = `${file.name} added`;
    $("upload-form").reset();
  } catch (error) {
    status.textContent = `${file.name}: ${error.message}`;
  } finally {
    bar.hidden = true;
    showKnowledge();
  }
}
