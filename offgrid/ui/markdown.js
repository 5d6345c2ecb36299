/** Markdown to DOM nodes, for the model's answers: paragraphs, headings, lists, quotes, fenced
 * code blocks (with a copy button), inline code, bold, italic and http(s) links. It builds
 * elements and text nodes only, so whatever HTML the text holds shows as text. */

import { h } from "./dom.js";

const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const ITEM = /^\s*([-*+]|\d+[.)])\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
// Code spans first, so that what they hold is not read as emphasis or links.
const INLINE = /(`+)(.+?)\1|\*\*(.+?)\*\*|__(.+?)__|\*([^*\s](?:.*?[^*\s])?)\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;

/** The nodes `text` renders to (a still-growing answer renders as far as it goes). */
export function render(text) {
  const blocks = [];
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i += 1) {
        body.push(lines[i]);
      }
      blocks.push(codeBlock(body.join("\n"), fence[2]));
      i += 1;
    } else if (HEADING.test(line)) {
      const [, marks, title] = HEADING.exec(line);
      blocks.push(h(`h${Math.min(marks.length + 2, 6)}`, {}, inline(title)));
      i += 1;
    } else if (ITEM.test(line)) {
      const ordered = /\d/.test(ITEM.exec(line)[1]);
      const items = [];
      for (; i < lines.length && ITEM.test(lines[i]); i += 1) {
        items.push(h("li", {}, inline(ITEM.exec(lines[i])[2])));
      }
      blocks.push(h(ordered ? "ol" : "ul", {}, items));
    } else if (QUOTE.test(line)) {
      const quoted = [];
      for (; i < lines.length && QUOTE.test(lines[i]); i += 1) quoted.push(QUOTE.exec(lines[i])[1]);
      blocks.push(h("blockquote", {}, render(quoted.join("\n"))));
    } else if (line.trim()) {
      const paragraph = [];
      for (; i < lines.length && lines[i].trim() && !startsBlock(lines[i]); i += 1) {
        paragraph.push(lines[i]);
      }
      blocks.push(h("p", {}, lineBreaks(paragraph)));
    } else {
      i += 1;
    }
  }
  return blocks;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || ITEM.test(line) || QUOTE.test(line);
}

function lineBreaks(lines) {
  return lines.flatMap((line, n) => (n ? [h("br"), ...inline(line)] : inline(line)));
}

function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    nodes.push(text.slice(last, match.index));
    const [, , code, bold, boldToo, italic, label, url] = match;
    if (code !== undefined) nodes.push(h("code", {}, code));
    else if (bold !== undefined || boldToo !== undefined) nodes.push(h("strong", {}, inline(bold ?? boldToo)));
    else if (italic !== undefined) nodes.push(h("em", {}, inline(italic)));
    else nodes.push(h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, label));
    last = match.index + match[0].length;
  }
  nodes.push(text.slice(last));
  return nodes.filter((node) => node !== "");
}

function codeBlock(code, language) {
  const copy = h("button", { type: "button", class: "copy", onclick: async () => {
    try {
      await navigator.clipboard.writeText(code);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Select and copy";  // no clipboard outside a secure context
    }
  } }, "Copy");
  return h("div", { class: "code" }, h("div", { class: "code-bar" }, language || "code", copy),
    h("pre", {}, h("code", {}, code)));
}
