// The dashboard's settings panel: the owner changes a project's settings after creation
// (PATCH /api/v1/projects/{id}, only the fields that changed). What can no longer change is
// the server's rule: GET /api/v1/projects/{id} lists it in `locked` with the reason, and those
// settings are shown, not offered. Checks mirror the new-project form's; the server decides.

import { ApiError, api } from "./api.js";
import { announce, h } from "./dom.js";
import { LABELS, fillSelect, formKit, serverErrors, validateConfig } from "./config_form.js";

const NUMBERS = {
  retrain_every: { min: "1", step: "1" },
  passive_share: { min: "0", max: "0.5", step: "0.05" },
  "redundancy.min": { min: "1", max: "100", step: "1" },
  "redundancy.max": { min: "1", max: "100", step: "1" },
  "redundancy.tau": { min: "0", max: "1", step: "0.01" },
  control_rate: { min: "0", max: "0.5", step: "0.01" },
  consistency_rate: { min: "0", max: "0.5", step: "0.01" },
  trust_threshold: { min: "0", max: "1", step: "0.05" },
};

/** The form's values of a project as the API shows it (the shape validateConfig takes). */
function valuesOf(p) {
  return {
    name: p.name,
    task_type: p.task_type,
    classes: (p.classes || []).join("\n"),
    range_low: p.range ? String(p.range[0]) : "",
    range_high: p.range ? String(p.range[1]) : "",
    feature_set: p.feature_set,
    learner: p.learner,
    strategy: p.strategy,
    mode: p.mode,
    queue: p.queue || "redundancy",
    retrain_every: String(p.retrain_every),
    passive_share: String(p.passive_share),
    "redundancy.min": String(p.redundancy.min),
    "redundancy.max": String(p.redundancy.max),
    "redundancy.tau": String(p.redundancy.tau),
    control_rate: String(p.control_rate),
    consistency_rate: String(p.consistency_rate),
    trust_threshold: String(p.trust_threshold),
    budget: p.budget === null || p.budget === undefined ? "" : String(p.budget),
    rating_tolerance: p.rating_tolerance === null || p.rating_tolerance === undefined ? "" : String(p.rating_tolerance),
    invite_only: Boolean(p.invite_only),
    auto_block_spammers: Boolean(p.auto_block_spammers),
  };
}

function classList(text) {
  return text.split(/[\n,]/).map((x) => x.trim()).filter((x) => x !== "");
}

/** The PATCH body: only what differs from `before` (both in valuesOf's shape). */
function changes(before, v) {
  const body = {};
  const same = (k) => String(before[k]) === String(v[k]);
  if (v.name.trim() !== before.name) body.name = v.name.trim();
  for (const k of ["feature_set", "learner", "strategy", "mode", "queue"]) if (!same(k)) body[k] = v[k];
  for (const k of ["retrain_every", "passive_share", "control_rate", "consistency_rate", "trust_threshold"]) {
    if (Number(v[k]) !== Number(before[k])) body[k] = Number(v[k]);
  }
  const red = {};
  for (const k of ["min", "max", "tau"]) if (Number(v[`redundancy.${k}`]) !== Number(before[`redundancy.${k}`])) red[k] = Number(v[`redundancy.${k}`]);
  if (Object.keys(red).length) body.redundancy = red;
  if (!same("budget")) body.budget = v.budget === "" ? null : Number(v.budget);
  if (v.invite_only !== before.invite_only) body.invite_only = v.invite_only;
  if (v.auto_block_spammers !== before.auto_block_spammers) body.auto_block_spammers = v.auto_block_spammers;
  if (v.task_type === "continuous") {
    if (!same("range_low") || !same("range_high")) body.range = [Number(v.range_low), Number(v.range_high)];
    if (!same("rating_tolerance")) body.rating_tolerance = v.rating_tolerance === "" ? null : Number(v.rating_tolerance);
  } else if (classList(v.classes).join("\n") !== classList(before.classes).join("\n")) {
    body.classes = classList(v.classes);
  }
  return body;
}

/** The settings form of `project` (GET /projects/{id} as its owner sees it): `{element,
 *  relock}`. `onSaved(project)` runs after each saved change with the project as the server now
 *  has it; `relock()` asks the server again what can no longer change (after an upload, say)
 *  and leaves what is being typed alone. */
export function settingsPanel(project, onSaved) {
  const kit = formKit("st");
  const { fid, field, input, select } = kit;
  let current = project;
  const regression = project.task_type === "continuous";
  const c = {};
  c.name = input("name", { type: "text", maxlength: "200", required: true, autocomplete: "off" });
  c.classes = h("textarea", { id: fid("classes"), name: "classes", rows: "3", "aria-describedby": `${fid("classes")}-hint ${fid("classes")}-error` });
  c.range_low = h("input", { id: fid("range"), name: "range_low", type: "number", step: "any", "aria-label": "Lowest rating", "aria-describedby": `${fid("range")}-hint ${fid("range")}-error` });
  c.range_high = h("input", { id: "st-range-high", name: "range_high", type: "number", step: "any", "aria-label": "Highest rating", "aria-describedby": `${fid("range")}-hint ${fid("range")}-error` });
  c.feature_set = select("feature_set", [project.feature_set], project.feature_set);
  c.learner = select("learner", [project.learner], project.learner);
  c.strategy = select("strategy", [project.strategy], project.strategy);
  c.mode = select("mode", ["pool", "stream"], project.mode);
  c.queue = select("queue", ["redundancy", "relabel_or_new"], project.queue || "redundancy");
  for (const [key, attrs] of Object.entries(NUMBERS)) c[key] = input(key, { type: "number", ...attrs });
  c.budget = input("budget", { type: "number", min: "1", step: "1", placeholder: "no limit" });
  c.rating_tolerance = input("rating_tolerance", { type: "number", min: "0", step: "any", placeholder: "range / 8 / √max" });
  c.invite_only = input("invite_only", { type: "checkbox" });
  c.auto_block_spammers = input("auto_block_spammers", { type: "checkbox" });

  const fixed = h("dl", { class: "figures fixed-settings" });
  const formError = h("div", { class: "form-errors", role: "alert", id: "st-form-error" });
  const saved = h("p", { class: "ok", role: "status" });
  const submit = h("button", { type: "submit", class: "dash-button primary" }, "Save settings");
  const labels = regression ? field("range", h("span", { class: "range-pair" }, c.range_low, h("span", { "aria-hidden": "true" }, " to "), c.range_high)) : field("classes", c.classes);
  const modeField = field("mode", c.mode);
  const form = h(
    "form",
    { class: "settings", novalidate: true, "aria-label": "Project settings" },
    h("p", { class: "lead" }, "Changes apply from now on: to the next tasks, answers and learning round. Clips already finished keep their labels."),
    fixed,
    formError,
    h("fieldset", {}, h("legend", {}, "What to ask"), field("name", c.name), labels),
    h("fieldset", {}, h("legend", {}, "How to learn"), field("feature_set", c.feature_set), field("learner", c.learner), field("strategy", c.strategy), modeField, field("retrain_every", c.retrain_every), field("passive_share", c.passive_share)),
    h("fieldset", {}, h("legend", {}, "How many answers per clip"), ["classification", "binary"].includes(project.task_type) ? field("queue", c.queue) : null, field("redundancy.min", c["redundancy.min"]), field("redundancy.max", c["redundancy.max"]), field("redundancy.tau", c["redundancy.tau"]), regression ? field("rating_tolerance", c.rating_tolerance) : null),
    h("fieldset", {}, h("legend", {}, "Quality control and access"), field("control_rate", c.control_rate), field("consistency_rate", c.consistency_rate), field("trust_threshold", c.trust_threshold), field("budget", c.budget), field("invite_only", c.invite_only), field("auto_block_spammers", c.auto_block_spammers)),
    h("div", { class: "actions" }, submit),
    saved,
  );

  /** Fill the controls from `p`, and show what is locked. */
  function fill(p) {
    const v = valuesOf(p);
    for (const [k, el] of Object.entries(c)) {
      if (el.type === "checkbox") el.checked = v[k];
      else if (el.tagName === "SELECT") fillSelect(el, [...new Set([...[...el.options].map((o) => o.value), v[k]])], v[k]);
      else el.value = v[k];
    }
    showLocked(p);
  }

  /** Hide the settings that `p.locked` names and say why in the "fixed" list. */
  function showLocked(p) {
    const locked = p.locked || {};
    labels.hidden = Boolean(locked.classes || locked.range);
    modeField.hidden = Boolean(locked.mode);
    const rows = [["Task type", p.task_type, locked.task_type]];
    if (locked.classes) rows.push(["Classes", p.classes.join(", "), locked.classes]);
    if (locked.range) rows.push(["Rating range", `${p.range[0]} to ${p.range[1]}`, locked.range]);
    if (locked.mode) rows.push(["Mode", p.mode, locked.mode]);
    fixed.replaceChildren(...rows.map(([k, value, why]) => [h("dt", {}, k), h("dd", {}, h("strong", {}, value), why ? h("span", { class: "hint fixed-why" }, ` (${why})`) : null)]).flat());
  }
  fill(project);

  // The learning core's choices come from the server (its first answer can take a few seconds).
  api("GET", "/project-options").then((options) => {
    const kind = regression ? "regression" : "classification";
    fillSelect(c.feature_set, options.feature_sets, c.feature_set.value);
    fillSelect(c.learner, options.learners[kind], c.learner.value);
    const twoClasses = project.task_type === "classification" && (project.classes || []).length === 2;
    fillSelect(c.strategy, options.strategies[twoClasses ? "binary" : project.task_type] || options.strategies[kind], c.strategy.value);
  }, () => {});

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    saved.textContent = "";
    const v = {};
    for (const [k, el] of Object.entries(c)) v[k] = el.type === "checkbox" ? el.checked : el.value;
    v.task_type = current.task_type;
    const errors = validateConfig(v);
    kit.showErrors(form, formError, errors);
    if (Object.keys(errors).length) return;
    const body = changes(valuesOf(current), v);
    if (!Object.keys(body).length) {
      saved.textContent = "Nothing to save: the settings are as they were.";
      return;
    }
    submit.disabled = true;
    submit.textContent = "Saving…";
    try {
      current = await api("PATCH", `/projects/${current.id}`, body);
      fill(current);
      const names = Object.keys(body).map((k) => (k === "redundancy" ? "answers per clip" : (LABELS[k] || k).toLowerCase()));
      saved.textContent = `Saved: ${names.join(", ")}.`;
      announce(saved.textContent);
      if (onSaved) onSaved(current);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        kit.showErrors(form, formError, { _form: "Your session ended: sign in again to save." });
        return;
      }
      kit.showErrors(form, formError, e instanceof ApiError ? serverErrors(e) : { _form: "The server could not be reached; try again." });
    } finally {
      submit.disabled = false;
      submit.textContent = "Save settings";
    }
  });
  async function relock() {
    try {
      const fresh = await api("GET", `/projects/${current.id}`);
      current = { ...current, locked: fresh.locked };
      showLocked(current);
    } catch {
      // the next save gets the server's word anyway
    }
  }

  return { element: form, relock };
}
