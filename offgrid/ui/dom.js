/** Building the page's DOM. Text (the user's, the model's, the server's) always goes in as
 * text nodes, never as markup: there is no innerHTML anywhere in the page. */

/** An element with attributes, listeners ("onclick": fn) and children (nodes or strings). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  node.append(...children.flat().filter((child) => child != null && child !== false));
  return node;
}

export const $ = (id) => document.getElementById(id);

export function bytes(count) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (count >= 1024 && unit < units.length - 1) [count, unit] = [count / 1024, unit + 1];
  return `${count.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

let toastTimer;

/** Say what went wrong, for a few seconds. */
export function toast(message) {
  const node = $("toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 6000);
}

/** A button that asks again before it acts ("Delete" -> "Sure?"). */
export function confirmButton(label, action, props = {}) {
  const button = h("button", { type: "button", ...props, onclick: () => {
    if (button.dataset.armed) action();
    else {
      button.dataset.armed = "yes";
      button.textContent = "Sure?";
    }
  }, onblur: () => {
    delete button.dataset.armed;
    button.textContent = label;
  } }, label);
  return button;
}

/** Show a progress bar at `percent` (null: indeterminate). */
export function progress(bar, percent) {
  bar.hidden = false;
  if (percent == null) bar.removeAttribute("value");
  else bar.value = percent;
}
