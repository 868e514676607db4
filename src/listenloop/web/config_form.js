// What the project forms share (the new-project form in dashboard.js and the settings panel in
// settings.js): labels and help per setting, the client-side checks that mirror the server's
// ProjectConfig, server errors mapped to their fields, and field builders. No rules beyond
// those checks: the server decides.

import { h } from "./dom.js";

export const CANT_TELL = "can't tell";
const MIN_CLASSES = { classification: 2, binary: 2, multilabel: 1, events: 1 };

export const FIELD_HELP = {
  name: "Shown to annotators; 1 to 200 characters.",
  task_type: "classification: one class per clip; binary: exactly two classes; continuous: a rating in a range; multilabel: any set of tags (active learning ranks the pool tag by tag; the score is the tags' mean UAR); events: long recordings cut into overlapping 10 s segments (1 s apart), each tagged with the sounds heard in it, exported as strong soft and hard labels.",
  classes: "One per line or comma-separated. \"can't tell\" is always offered: do not list it; no '|'.",
  range: "The lowest and the highest rating; low must be below high.",
  feature_set: "Audio features the model learns from; ComParE 2016 measured best on speech and office sounds.",
  learner: "The model; default: a linear SVM (SVR for ratings).",
  strategy: "Which clips to ask about next; auto (the default) learns which rule pays on your data, random is passive learning.",
  mode: "pool ranks every uploaded clip; stream judges arrivals 2 × retrain cadence at a time and lets the less informative half pass unheard.",
  queue: "redundancy: new clips in the strategy's order, each asked until it closes; relabel_or_new (classes, pool mode): one more answer on a clip already heard or a first on a new one, whichever the model and the answers so far say is worth more (ActiveLab).",
  retrain_every: "Retrain and re-rank the queue after this many new labels (at least 1).",
  passive_share: "Share of the queue drawn at random (0 to 0.5): the dashboard's passive-learning curve, i.e. what random labels alone reach. 0 turns it off.",
  "redundancy.min": "Fewest answers before a clip can close (1 to 100).",
  "redundancy.max": "Most answers a clip gets, then it is marked low-agreement (1 to 100, at least min).",
  "redundancy.tau": "Close a clip once its label's probability reaches this (above 0, at most 1); multi-label: its whole tag set's.",
  rating_tolerance: "Close a rating once the standard error of its mean (annotators weighted by their accuracy on control answers) is at most this, in the rating's units; empty: what the maximum of answers from annotators the project does not know reach (an eighth of the range / √max).",
  control_rate: "Share of tasks that are control questions with a known answer (0 to 0.5).",
  consistency_rate: "Share of tasks that repeat a clip the annotator heard before (0 to 0.5; with controls at most 0.5).",
  trust_threshold: "Answers of annotators trusted less than this cannot close a clip (0 to 1).",
  budget: "Most answers to collect, every kind counted; leave empty for no limit.",
  invite_only: "Only annotators you invite may take part.",
  auto_block_spammers: "Spammer detection always flags annotators whose answers look random, constant or mostly \"can't tell\", and their answers stop counting. With this on, they are also blocked from the project (off: blocking is yours to decide).",
};

export const LABELS = {
  name: "Project name", task_type: "Task type", classes: "Classes", range: "Rating range",
  feature_set: "Feature set", learner: "Learner", strategy: "Query strategy", mode: "Mode", queue: "Queue",
  retrain_every: "Retrain every (labels)", passive_share: "Passive arm (share drawn at random)",
  "redundancy.min": "Minimum answers per clip",
  "redundancy.max": "Maximum answers per clip", "redundancy.tau": "Confidence to close a clip (τ)",
  rating_tolerance: "Rating tolerance (standard error)",
  control_rate: "Control-question rate", consistency_rate: "Consistency-question rate",
  trust_threshold: "Trust threshold", budget: "Answer budget", invite_only: "Invite only",
  auto_block_spammers: "Block detected spammers",
};

/** Client-side checks mirroring ProjectConfig's; returns {field: message}. */
export function validateConfig(v) {
  const e = {};
  const name = v.name.trim();
  if (!name) e.name = "Give the project a name.";
  else if (name.length > 200) e.name = "At most 200 characters.";
  if (v.task_type === "continuous") {
    const lo = Number(v.range_low), hi = Number(v.range_high);
    if (v.range_low === "" || v.range_high === "" || !Number.isFinite(lo) || !Number.isFinite(hi)) e.range = "Enter both ends of the range as numbers.";
    else if (!(lo < hi)) e.range = `Low must be below high, not [${lo}, ${hi}].`;
  } else {
    const raw = v.classes.split(/[\n,]/).map((c) => c.trim());
    const classes = raw.filter((c) => c !== "");
    const least = MIN_CLASSES[v.task_type];
    if (raw.length > 1 && raw.some((c, i) => c === "" && i < raw.length - 1 && raw.slice(i + 1).some((x) => x !== ""))) {
      e.classes = "An empty class name: remove the extra comma or blank line.";
    } else if (new Set(classes).size !== classes.length) e.classes = "A class is named twice.";
    else if (classes.includes(CANT_TELL)) e.classes = "\"can't tell\" is always offered; do not list it.";
    else if (classes.some((c) => c.includes("|"))) e.classes = "'|' separates tags and cannot be part of a class name.";
    else if (classes.length < least) e.classes = `A ${v.task_type} task needs at least ${least} class${least > 1 ? "es" : ""}.`;
    else if (v.task_type === "binary" && classes.length !== 2) e.classes = "A binary task has exactly two classes.";
  }
  const int = (key, lo, hi, msg) => {
    const x = Number(v[key]);
    if (v[key] === "" || !Number.isInteger(x) || x < lo || (hi !== null && x > hi)) e[key] = msg;
  };
  const real = (key, lo, hi, msg, openLow = false) => {
    const x = Number(v[key]);
    if (v[key] === "" || !Number.isFinite(x) || (openLow ? x <= lo : x < lo) || x > hi) e[key] = msg;
  };
  int("retrain_every", 1, null, "A whole number, at least 1.");
  real("passive_share", 0, 0.5, "A share from 0 to 0.5.");
  int("redundancy.min", 1, 100, "A whole number from 1 to 100.");
  int("redundancy.max", 1, 100, "A whole number from 1 to 100.");
  if (!e["redundancy.min"] && !e["redundancy.max"] && Number(v["redundancy.min"]) > Number(v["redundancy.max"])) {
    e["redundancy.max"] = `The maximum must be at least the minimum (${v["redundancy.min"]}).`;
  }
  real("redundancy.tau", 0, 1, "A number above 0 and at most 1.", true);
  real("control_rate", 0, 0.5, "A share from 0 to 0.5.");
  real("consistency_rate", 0, 0.5, "A share from 0 to 0.5.");
  if (!e.control_rate && !e.consistency_rate && Number(v.control_rate) + Number(v.consistency_rate) > 0.5 + 1e-12) {
    e.consistency_rate = "Control and consistency rates together must not exceed 0.5.";
  }
  real("trust_threshold", 0, 1, "A number from 0 to 1.");
  if (v.task_type === "continuous" && v.rating_tolerance !== undefined && v.rating_tolerance !== "") {
    const t = Number(v.rating_tolerance), width = Number(v.range_high) - Number(v.range_low);
    if (!Number.isFinite(t) || t <= 0) e.rating_tolerance = "A number above 0 in the rating's units, or empty: an eighth of the range / √max.";
    else if (Number.isFinite(width) && width > 0 && t > width) e.rating_tolerance = `At most the range's width (${width}).`;
  }
  if (v.budget !== "") {
    const b = Number(v.budget);
    if (!Number.isInteger(b) || b < 1) e.budget = "A whole number of answers, at least 1 (or empty: no limit).";
  }
  return e;
}

/** The field a server error is about (pydantic's loc, or the message of a model check). */
export function fieldOfError(loc, msg) {
  const path = (loc || []).filter((x) => x !== "body");
  const dotted = path.join(".");
  if (dotted in LABELS) return dotted;
  if (path[0] === "range") return "range";
  if (path[0] === "classes") return "classes";
  if (path[0] === "redundancy" && path[1]) return `redundancy.${path[1]}`;
  const text = String(msg || "").replace(/^Value error, /, "");
  if (/control_rate \+ consistency_rate/.test(text)) return "consistency_rate";
  if (/^redundancy/.test(text)) return "redundancy.max";
  if (/^range|needs range|range is for/.test(text)) return "range";
  if (/class/.test(text)) return "classes";
  for (const key of ["learner", "feature_set", "strategy", "name"]) if (text.startsWith(key)) return key;
  return null;
}

export function serverErrors(error) {
  const out = {};
  const body = error.body;
  if (body && Array.isArray(body.detail)) {
    for (const d of body.detail) {
      const field = fieldOfError(d.loc, d.msg) || "_form";
      const text = String(d.msg || "").replace(/^Value error, /, "");
      out[field] = out[field] ? `${out[field]} ${text}` : text;
    }
  } else {
    out[fieldOfError([], error.message) || "_form"] = error.message;
  }
  return out;
}

/** Fill a <select> with options (values, or [value, text] pairs) and select `value` if offered. */
export function fillSelect(el, options, value) {
  el.replaceChildren(...options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, text);
  }));
  if (options.some((o) => (Array.isArray(o) ? o[0] : o) === value)) el.value = value;
}

/** Field builders for one form whose element ids start with `prefix` ("np" for the new-project
 *  form, "st" for the settings panel): fid, field, input, select and showErrors. */
export function formKit(prefix) {
  const fid = (key) => `${prefix}-${key.replace(".", "-")}`;

  function field(key, control, extra) {
    const help = FIELD_HELP[key];
    return h(
      "div",
      { class: "field", dataset: { field: key } },
      h("label", { for: fid(key) }, LABELS[key]),
      control,
      extra || null,
      help ? h("p", { class: "hint", id: `${fid(key)}-hint` }, help) : null,
      h("p", { class: "field-error", id: `${fid(key)}-error` }),
    );
  }

  function input(key, attrs) {
    return h("input", { id: fid(key), name: key, "aria-describedby": `${fid(key)}-hint ${fid(key)}-error`, ...attrs });
  }

  function select(key, options, value) {
    const el = h("select", { id: fid(key), name: key, "aria-describedby": `${fid(key)}-hint ${fid(key)}-error` });
    fillSelect(el, options, value);
    return el;
  }

  /** Show {field: message} by field and as a linked list in `formError`; focus the first field. */
  function showErrors(form, formError, errors) {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    formError.replaceChildren();
    const keys = Object.keys(errors);
    if (!keys.length) return;
    const list = h("ul", {});
    let first = null;
    for (const key of keys) {
      if (key === "_form") {
        list.append(h("li", {}, errors[key]));
        continue;
      }
      const err = document.getElementById(`${fid(key)}-error`);
      if (err) err.textContent = errors[key];
      const control = document.getElementById(fid(key));
      if (control) {
        control.setAttribute("aria-invalid", "true");
        first = first || control;
      }
      list.append(h("li", {}, h("a", { href: `#${fid(key)}`, onclick: (ev) => { ev.preventDefault(); control && control.focus(); } }, `${LABELS[key] || key}: ${errors[key]}`)));
    }
    formError.append(h("p", {}, keys.length === 1 ? "Please fix this:" : `Please fix these ${keys.length} things:`), list);
    (first || formError).focus?.();
  }

  return { fid, field, input, select, showErrors };
}
