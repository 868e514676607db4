// A project's annotation guidelines and example clips per class, in a modal <dialog>: shown
// before an annotator's first task (once per version of the guidelines) and on demand (the
// "Guidelines" button, or G). The server renders the Markdown with raw HTML off
// (GET /projects/{id}/guidelines → html); this module still never sets innerHTML: it parses that
// HTML into an inert document and rebuilds only the allowlisted elements below as new nodes,
// with no attribute but a link's http(s), mailto or relative href.

import { api } from "./api.js";
import { h } from "./dom.js";

const ALLOWED = new Set([
  "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "strong", "em", "code", "pre",
  "blockquote", "hr", "br", "a", "table", "thead", "tbody", "tr", "th", "td",
]);
const SAFE_HREF = /^(https?:|mailto:|#|\/(?!\/)|[^:]*$)/i;

/** Rebuild the allowlisted part of `node`'s children as fresh nodes. */
function rebuild(node) {
  const out = [];
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      out.push(child.textContent);
      continue;
    }
    if (child.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = child.tagName.toLowerCase();
    if (!ALLOWED.has(tag)) {
      out.push(child.textContent); // the text of anything else, never its markup
      continue;
    }
    const props = {};
    if (tag === "a") {
      const href = child.getAttribute("href") || "";
      if (SAFE_HREF.test(href.trim())) Object.assign(props, { href: href.trim(), rel: "noopener noreferrer", target: "_blank" });
    }
    out.push(h(tag, props, rebuild(child)));
  }
  return out;
}

/** The guidelines' HTML (from the server) as safe nodes. */
export function guidelineNodes(html) {
  const doc = new DOMParser().parseFromString(`<!doctype html><body>${html || ""}</body>`, "text/html");
  return rebuild(doc.body);
}

/** What identifies a version of the guidelines (shown again when it changes). */
function versionOf(guide) {
  const text = `${guide.markdown}|${guide.examples.map((e) => `${e.example_id}:${e.label}`).join(",")}`;
  let hash = 0;
  for (let i = 0; i < text.length; i += 1) hash = (hash * 31 + text.charCodeAt(i)) | 0;
  return String(hash);
}

function seenKey(projectId) {
  return `listenloop-guide-${projectId}`;
}

/** Whether there is anything to show. */
export function hasGuide(guide) {
  return Boolean(guide && (guide.markdown.trim() || guide.examples.length));
}

/** Whether this version was shown on this device already. */
export function guideSeen(projectId, guide) {
  try {
    return localStorage.getItem(seenKey(projectId)) === versionOf(guide);
  } catch {
    return false;
  }
}

function markSeen(projectId, guide) {
  try {
    localStorage.setItem(seenKey(projectId), versionOf(guide));
  } catch {
    // private mode: shown again next time
  }
}

/** Example clips grouped by class, each with its own player (the session cookie goes along). */
function examplesList(guide) {
  if (!guide.examples.length) return null;
  const byClass = new Map();
  for (const e of guide.examples) {
    if (!byClass.has(e.label)) byClass.set(e.label, []);
    byClass.get(e.label).push(e);
  }
  return h(
    "section",
    { class: "guide-examples", "aria-labelledby": "guide-examples-title" },
    h("h3", { id: "guide-examples-title" }, "Examples"),
    h("ul", { class: "guide-example-list" }, [...byClass].map(([label, list]) => h(
      "li",
      { class: "guide-example" },
      h("strong", { class: "guide-example-label" }, label),
      list.map((e, i) => h("audio", { controls: true, preload: "none", src: e.audio_url, "aria-label": `Example ${i + 1} of ${label}` })),
    ))),
  );
}

/** Open the guidelines dialog; resolves when it closes. */
export function showGuide(projectId, guide, projectName) {
  const close = h("button", { type: "submit", class: "primary guide-close", value: "close" }, "Start listening");
  const body = h("div", { class: "guide-text" }, guide.markdown.trim() ? guidelineNodes(guide.html) : h("p", { class: "muted" }, "The owner has written no guidelines; the examples below show each class."));
  const dialog = h(
    "dialog",
    { class: "guide card", id: "guide-dialog", "aria-labelledby": "guide-title" },
    h("h2", { id: "guide-title" }, `How to label: ${projectName}`),
    body,
    examplesList(guide),
    h("p", { class: "hint" }, "Open these again at any time with the Guidelines button or the G key."),
    h("form", { method: "dialog", class: "actions" }, close),
  );
  document.body.append(dialog);
  markSeen(projectId, guide);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      for (const player of dialog.querySelectorAll("audio")) player.pause();
      dialog.remove();
      resolve();
    });
    dialog.showModal();
    close.focus();
  });
}

/** The project's guidelines, or null when they cannot be read (the page works without them). */
export async function loadGuide(projectId) {
  try {
    return await api("GET", `/projects/${projectId}/guidelines`);
  } catch {
    return null;
  }
}
