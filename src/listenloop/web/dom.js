// Tiny DOM helpers: build elements without innerHTML (user data never becomes markup).

/** h("button", {class: "x", type: "button", onclick: fn}, "text", child, [more]) → HTMLElement. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append strings (as text), nodes and (nested) arrays of them; null/undefined/false are skipped. */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace every child of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** Say `text` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // a fresh text node in the next frame is announced even when the text repeats
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

/** A percentage for display: 0.4234 → "42%". */
export function percent(fraction) {
  return `${Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100)}%`;
}

/** A <progress> with a visible label and text (accessible name from the label). */
export function progressBar(id, labelText, fraction, detail) {
  const bar = h("progress", { id, max: "1", value: String(Math.max(0, Math.min(1, fraction || 0))) });
  return h(
    "div",
    { class: "progress" },
    h("label", { for: id }, labelText),
    bar,
    h("span", { class: "progress-text" }, detail ?? percent(fraction)),
  );
}
