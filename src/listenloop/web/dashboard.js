// The owner's pages: a new project (the form; it is created as a draft) and a project's live
// dashboard (draft notice, learning curve, labels, answers per clip, savings, pool map,
// annotators with flag and block, the crowd's agreement, uploads (upload.js), settings (settings.js),
// the dry run (dry_run.js), exports).
// app.js imports this module lazily and calls
// renderNewProject(root) for #/new and renderDashboard(root, projectId) for
// #/projects/{id}/dashboard. No inline styles: the stylesheets /static/dashboard.css and manage.css are
// linked once, and charts set SVG attributes only.

import { api, ApiError } from "./api.js";
import { announce, h, replace } from "./dom.js";
import { barChart, colour, dataTable, lineChart, marker, NO_CATEGORY, scatterPlot } from "./charts.js";
import { fillSelect, formKit, serverErrors, validateConfig } from "./config_form.js";
import { draftNotice } from "./draft.js";
import { lifecyclePanel } from "./lifecycle.js";
import { dryRunPanel } from "./dry_run.js";
import { settingsPanel } from "./settings.js";
import { uploadForms } from "./upload.js";

const POLL_MS = 5000;

function ensureStylesheet() {
  for (const href of ["/static/dashboard.css", "/static/manage.css"]) {
    if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h("link", { rel: "stylesheet", href }));
  }
}

function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
}

function num(x, digits = 2) {
  return x === null || x === undefined ? "–" : String(Number(Number(x).toFixed(digits)));
}

// ---------------------------------------------------------------------------------------------
// New project
// ---------------------------------------------------------------------------------------------

const FALLBACK_OPTIONS = {
  feature_sets: ["compare", "egemaps", "logmel", "mfcc"],
  learners: { classification: ["svm", "logreg", "rf"], regression: ["svr", "rf", "ridge"] },
  strategies: {
    classification: ["auto", "margin", "random", "least_confidence", "entropy", "margin_diverse", "medium_certainty",
      "alternating_confidence", "self_training"],
    binary: ["auto", "margin", "random", "least_confidence", "entropy", "margin_diverse", "medium_certainty",
      "least_confidence_tuned", "alternating_confidence", "self_training"],
    regression: ["regression_binary_confidence", "random"],
  },
  schema: null,
};

const DEFAULTS = {
  feature_set: "compare", strategy: "auto", mode: "pool", retrain_every: 20, passive_share: 0.1,
  "redundancy.min": 2, "redundancy.max": 7, "redundancy.tau": 0.95,
  control_rate: 0.1, consistency_rate: 0.05, trust_threshold: 0.5, budget: "", invite_only: false,
  rating_tolerance: "",
};

function schemaDefaults(schema) {
  const out = { ...DEFAULTS };
  if (!schema || !schema.properties) return out;
  for (const [key, prop] of Object.entries(schema.properties)) {
    if (key in out && prop.default !== undefined && prop.default !== null) out[key] = prop.default;
  }
  const red = schema.$defs && schema.$defs.Redundancy && schema.$defs.Redundancy.properties;
  if (red) for (const k of ["min", "max", "tau"]) if (red[k] && red[k].default !== undefined) out[`redundancy.${k}`] = red[k].default;
  return out;
}

/** A status line while a page's data loads (the first /project-options takes seconds). */
function loading(text) {
  return h("div", { class: "dash" }, h("p", { class: "loading-state", role: "status", "aria-busy": "true" }, text));
}

/** #/new: the create-project form; the new project (a draft) opens on its dashboard. */
export async function renderNewProject(root) {
  ensureStylesheet();
  const { fid, field, input, select, showErrors: showFieldErrors } = formKit("np");
  replace(root, loading("Loading the new-project form: feature sets, learners and query strategies…"));
  let options = FALLBACK_OPTIONS;
  try {
    options = await api("GET", "/project-options");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) throw e;
  }
  const d = schemaDefaults(options.schema);
  const c = {};
  c.name = input("name", { type: "text", maxlength: "200", required: true, autocomplete: "off" });
  c.task_type = select("task_type", ["classification", "binary", "continuous", "multilabel", "events"], "classification");
  c.classes = h("textarea", { id: fid("classes"), name: "classes", rows: "3", "aria-describedby": `${fid("classes")}-hint ${fid("classes")}-error` });
  c.range_low = h("input", { id: fid("range"), name: "range_low", type: "number", step: "any", "aria-label": "Lowest rating", "aria-describedby": `${fid("range")}-hint ${fid("range")}-error` });
  c.range_high = h("input", { id: "np-range-high", name: "range_high", type: "number", step: "any", "aria-label": "Highest rating", "aria-describedby": `${fid("range")}-hint ${fid("range")}-error` });
  c.feature_set = select("feature_set", options.feature_sets, d.feature_set);
  c.learner = select("learner", [], "");
  c.strategy = select("strategy", [], d.strategy);
  c.mode = select("mode", ["pool", "stream"], d.mode);
  c.retrain_every = input("retrain_every", { type: "number", min: "1", step: "1", value: d.retrain_every });
  c.passive_share = input("passive_share", { type: "number", min: "0", max: "0.5", step: "0.05", value: d.passive_share });
  c["redundancy.min"] = input("redundancy.min", { type: "number", min: "1", max: "100", step: "1", value: d["redundancy.min"] });
  c["redundancy.max"] = input("redundancy.max", { type: "number", min: "1", max: "100", step: "1", value: d["redundancy.max"] });
  c["redundancy.tau"] = input("redundancy.tau", { type: "number", min: "0", max: "1", step: "0.01", value: d["redundancy.tau"] });
  c.rating_tolerance = input("rating_tolerance", { type: "number", min: "0", step: "any", value: d.rating_tolerance ?? "", placeholder: "range / 8 / √max" });
  c.control_rate = input("control_rate", { type: "number", min: "0", max: "0.5", step: "0.01", value: d.control_rate });
  c.consistency_rate = input("consistency_rate", { type: "number", min: "0", max: "0.5", step: "0.01", value: d.consistency_rate });
  c.trust_threshold = input("trust_threshold", { type: "number", min: "0", max: "1", step: "0.05", value: d.trust_threshold });
  c.budget = input("budget", { type: "number", min: "1", step: "1", value: d.budget ?? "", placeholder: "no limit" });
  c.invite_only = input("invite_only", { type: "checkbox", checked: Boolean(d.invite_only) });

  const classesField = field("classes", c.classes);
  const rangeField = field("range", h("span", { class: "range-pair" }, c.range_low, h("span", { "aria-hidden": "true" }, " to "), c.range_high));
  const toleranceField = field("rating_tolerance", c.rating_tolerance);
  const formError = h("div", { class: "form-errors", role: "alert", id: "np-form-error" });

  function syncTask() {
    const task = c.task_type.value;
    const regression = task === "continuous";
    classesField.hidden = regression;
    rangeField.hidden = !regression;
    toleranceField.hidden = !regression;
    const learners = options.learners[regression ? "regression" : "classification"];
    fillSelect(c.learner, [["", `default (${regression ? "svr" : "svm"})`], ...learners], c.learner.value || "");
    const strategies = options.strategies[task] || options.strategies[regression ? "regression" : "classification"];
    const wanted = strategies.includes(c.strategy.value) ? c.strategy.value : regression ? "regression_binary_confidence" : d.strategy;
    fillSelect(c.strategy, strategies, wanted);
  }
  c.task_type.addEventListener("change", syncTask);
  syncTask();

  const submit = h("button", { type: "submit", class: "dash-button primary" }, "Create project");
  const form = h(
    "form",
    { class: "dash-card new-project", novalidate: true, "aria-labelledby": "np-title" },
    h("h1", { id: "np-title" }, "New project"),
    h("p", { class: "lead" }, "Only the name, the task type and its classes (or range) are needed; every other setting has a sensible default."),
    formError,
    h("fieldset", {}, h("legend", {}, "What to ask"), field("name", c.name), field("task_type", c.task_type), classesField, rangeField),
    h("fieldset", {}, h("legend", {}, "How to learn"), field("feature_set", c.feature_set), field("learner", c.learner), field("strategy", c.strategy), field("mode", c.mode), field("retrain_every", c.retrain_every), field("passive_share", c.passive_share)),
    h("fieldset", {}, h("legend", {}, "How many answers per clip"), field("redundancy.min", c["redundancy.min"]), field("redundancy.max", c["redundancy.max"]), field("redundancy.tau", c["redundancy.tau"]), toleranceField),
    h("fieldset", {}, h("legend", {}, "Quality control and budget"), field("control_rate", c.control_rate), field("consistency_rate", c.consistency_rate), field("trust_threshold", c.trust_threshold), field("budget", c.budget), field("invite_only", c.invite_only)),
    h("div", { class: "actions" }, submit),
  );

  function values() {
    const v = {};
    for (const [k, el] of Object.entries(c)) v[k] = el.type === "checkbox" ? el.checked : el.value;
    return v;
  }

  function showErrors(errors) {
    showFieldErrors(form, formError, errors);
  }

  function payload(v) {
    const body = {
      name: v.name.trim(),
      task_type: v.task_type,
      feature_set: v.feature_set,
      learner: v.learner || null,
      strategy: v.strategy,
      mode: v.mode,
      retrain_every: Number(v.retrain_every),
      passive_share: Number(v.passive_share),
      redundancy: { min: Number(v["redundancy.min"]), max: Number(v["redundancy.max"]), tau: Number(v["redundancy.tau"]) },
      control_rate: Number(v.control_rate),
      consistency_rate: Number(v.consistency_rate),
      trust_threshold: Number(v.trust_threshold),
      budget: v.budget === "" ? null : Number(v.budget),
      invite_only: v.invite_only,
      open: false, // a draft until its owner opens it from the dashboard
    };
    if (v.task_type === "continuous") {
      body.range = [Number(v.range_low), Number(v.range_high)];
      body.rating_tolerance = v.rating_tolerance === "" ? null : Number(v.rating_tolerance);
    } else body.classes = v.classes.split(/[\n,]/).map((x) => x.trim()).filter((x) => x !== "");
    return body;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = values();
    const errors = validateConfig(v);
    showErrors(errors);
    if (Object.keys(errors).length) return;
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const project = await api("POST", "/projects", payload(v));
      announce(`Project ${project.name} created as a draft: add audio, then open it to annotators.`);
      location.hash = `#/projects/${project.id}/dashboard`;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) throw e;
      showErrors(e instanceof ApiError ? serverErrors(e) : { _form: "The server could not be reached; try again." });
    } finally {
      submit.disabled = false;
      submit.textContent = "Create project";
    }
  });

  replace(root, h("div", { class: "dash" }, form));
  c.name.focus();
}

// ---------------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------------

function card(id, title, ...children) {
  return h("section", { class: "dash-card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...children);
}

/** The background learning's last failure, when it has not succeeded since (status.learning_error). */
function learningProblem(summary) {
  const e = summary.status.learning_error;
  if (!e) return null;
  const retry = e.retry_in_s ? ` It retries in about ${Math.round(e.retry_in_s)} s.` : "";
  return h("p", { class: "learning-error", role: "status" }, `The background learning failed at ${e.at}: ${e.error || e.kind}.${retry}`);
}

function learningCurve(summary, width) {
  return [learningProblem(summary), learningCurveParts(summary, width)];
}

function learningCurveParts(summary, width) {
  const scores = summary.status.model_scores || [];
  const scored = scores.filter((r) => r.score !== null && r.score !== undefined);
  const metric = (scores[0] && scores[0].metric) || (summary.task_type === "continuous" ? "cc" : "uar");
  const metricName = metric === "uar" ? "UAR (unweighted average recall)" : "correlation (CC)";
  const share = summary.passive ? summary.passive.share : 0;
  const heldout = summary.passive && summary.passive.heldout_size;
  const note = h("p", { class: "note" }, share > 0
    ? `Passive: the same learner trained only on clips chosen at random (seed and control clips, and the ${pct(share)} of the queue drawn at random), i.e. what labelling in random order reached with that many labels. It and "model, held out" are scored on the same held-out clips: the passive arm's labelled clips, each left out of both fits${heldout ? ` (${heldout} clips at the newest round)` : ""}. The ${metric.toUpperCase()} line is cross-validated on the model's own labels, which the strategy chose, so it is not comparable with the passive line.`
    : "No passive-learning line: this project's passive_share is 0, so no clips are drawn at random to compare with.");
  if (!scored.length) {
    return [h("p", { class: "empty" }, scores.length
      ? `${scores.length} learning round${scores.length === 1 ? "" : "s"} so far, none scored yet: a score needs enough labels per class to cross-validate.`
      : "No learning round yet: the first one runs in the background as soon as the clips' features are extracted (about a minute for a few hundred clips), and again every time enough new labels arrive."), note];
  }
  const points = scored.map((r) => ({ x: r.labels, y: r.score }));
  const series = [{ name: metric.toUpperCase(), points }];
  const fair = scores.filter((r) => r.heldout_size);
  const held = fair.filter((r) => r.heldout_score !== null && r.heldout_score !== undefined);
  if (held.length) series.push({ name: "model, held out", points: held.map((r) => ({ x: r.labels, y: r.heldout_score })) });
  const passive = fair.filter((r) => r.passive_score !== null && r.passive_score !== undefined && r.passive_labels);
  if (passive.length) series.push({ name: "passive (random labels), held out", points: passive.map((r) => ({ x: r.passive_labels, y: r.passive_score })) });
  const k = summary.classes.length;
  if (metric === "uar" && k >= 2) {
    const xs = points.map((p) => p.x);
    series.push({ name: `chance (1/${k})`, dashed: true, points: [{ x: Math.min(0, ...xs), y: 1 / k }, { x: Math.max(...xs), y: 1 / k }] });
  }
  const last = scored[scored.length - 1];
  const best = scored.reduce((a, b) => (b.score > a.score ? b : a));
  const summaryText = `Latest score ${num(last.score)} ${metric.toUpperCase()} with ${last.labels} training labels (seed, control and finished crowd clips; ${scored.length} scored round${scored.length === 1 ? "" : "s"}); best ${num(best.score)} at ${best.labels} labels.`;
  return [
    lineChart({
      title: "Learning curve",
      desc: `Model ${metricName} against the number of training labels, one point per learning round.`,
      summary: summaryText,
      series,
      xLabel: "training labels",
      yLabel: metric.toUpperCase(),
      yDomain: metric === "uar" ? [0, 1] : [Math.min(0, ...points.map((p) => p.y), ...passive.map((r) => r.passive_score), ...held.map((r) => r.heldout_score)), 1],
      width,
      table: dataTable("Model score per learning round", ["Round", "Labels", "Score", "Held-out clips", "Model, held out", "Random labels", "Passive, held out", "Pseudo-labels", "Strategy when trained"], scores.map((r, i) => [String(i + 1), String(r.labels), r.score === null ? "not scored" : num(r.score, 3), r.heldout_size ? String(r.heldout_size) : "", r.heldout_score === null || r.heldout_score === undefined ? "" : num(r.heldout_score, 3), r.passive_labels ? String(r.passive_labels) : "", !r.heldout_size || r.passive_score === null || r.passive_score === undefined ? "" : num(r.passive_score, 3), r.pseudo_labels ? `${r.pseudo_labels} (not labels)` : "", r.cold_start ? "cold start" : ""])),
    }),
    note,
  ];
}

function labelChart(summary, width) {
  const dist = summary.label_distribution.map((r) => ({ ...r, expert: r.expert || 0 }));
  const sum = (r) => r.crowd + r.seed + r.expert;
  const total = dist.reduce((a, r) => a + sum(r), 0);
  if (!total) return [h("p", { class: "empty" }, "No labels yet.")];
  const top = dist.reduce((a, b) => (sum(b) > sum(a) ? b : a));
  const what = summary.task_type === "continuous" ? "rating bin" : summary.task_type === "multilabel" ? "tag" : "class";
  const corrected = dist.some((r) => r.expert);
  const series = [{ name: "crowd", values: dist.map((r) => r.crowd), colour: colour(0) }, { name: "seed", values: dist.map((r) => r.seed), colour: colour(1) }];
  if (corrected) series.push({ name: "expert (yours)", values: dist.map((r) => r.expert), colour: colour(2) });
  const head = [what, "Crowd", "Seed", ...(corrected ? ["Expert"] : [])];
  return [barChart({
    title: "Labels per " + what,
    desc: `How many clips carry each ${what}: labelled by the crowd, seed labels from the owner${corrected ? ", and the owner's corrections" : ""}.`,
    summary: `${total} labels; the most common ${what} is ${top.label} (${sum(top)}).`,
    categories: dist.map((r) => r.label),
    series,
    xLabel: what,
    yLabel: "clips",
    width,
    table: dataTable(`Labels per ${what}`, head, dist.map((r) => [r.label, String(r.crowd), String(r.seed), ...(corrected ? [String(r.expert)] : [])])),
  })];
}

function answersChart(summary, width) {
  const bars = summary.answers_histogram;
  const n = bars.reduce((a, b) => a + b.done + b.low_agreement + b.open, 0);
  if (!n) return [h("p", { class: "empty" }, "No clip has an answer yet.")];
  const finished = bars.reduce((a, b) => a + b.done + b.low_agreement, 0);
  const answers = bars.reduce((a, b) => a + b.answers * (b.done + b.low_agreement), 0);
  return [barChart({
    title: "Answers per clip",
    desc: "Number of crowd clips by how many regular answers they took: closed confidently, closed at the maximum with low agreement, or still open.",
    summary: `${finished} finished clip${finished === 1 ? "" : "s"} took ${finished ? num(answers / finished) : "–"} answer${finished && answers === finished ? "" : "s"} on average (maximum allowed ${summary.redundancy.max}); ${n - finished} clip${n - finished === 1 ? " is" : "s are"} still open.`,
    categories: bars.map((b) => String(b.answers)),
    series: [
      { name: "done", values: bars.map((b) => b.done), colour: colour(0) },
      { name: "low agreement", values: bars.map((b) => b.low_agreement), colour: colour(1) },
      { name: "open", values: bars.map((b) => b.open), colour: NO_CATEGORY },
    ],
    xLabel: "answers",
    yLabel: "clips",
    width,
    table: dataTable("Clips by number of answers", ["Answers", "Done", "Low agreement", "Open"], bars.map((b) => [String(b.answers), String(b.done), String(b.low_agreement), String(b.open)])),
  })];
}

/** The crowd's agreement (the background refresh's latest): alpha and kappa, overall and per class. */
function agreementPanel(summary) {
  const a = summary.agreement;
  if (!a) {
    const why = ["continuous"].includes(summary.task_type)
      ? "Agreement statistics are for projects whose answers are classes or tags."
      : "Agreement appears once clips have two answers or more (it is refreshed in the background as answers come in).";
    return h("p", { class: "empty" }, why);
  }
  const head = ["Class", "Answers", "Krippendorff's α", "Fleiss' κ"];
  const row = (label, answers, alpha, kappa, strong) => h("tr", strong ? { class: "total" } : {},
    h(strong ? "th" : "td", strong ? { scope: "row", dataset: { label: head[0] } } : { dataset: { label: head[0] } }, label),
    h("td", { dataset: { label: head[1] } }, String(answers)),
    h("td", { dataset: { label: head[2] } }, num(alpha, 3)),
    h("td", { dataset: { label: head[3] } }, num(kappa, 3)));
  const body = [row("All classes", a.answers, a.alpha, a.kappa, true),
    ...a.classes.map((c) => row(c.label, c.answers, c.alpha, c.kappa, false))];
  return h("div", {},
    h("p", { class: "note" }, `${a.items} clips with two answers or more (${a.answers} answers; "can't tell" left out). `
      + (a.kappa_raters ? `Fleiss' κ reads the first ${a.kappa_raters} answers of the ${a.kappa_items} clips that have that many. ` : "")
      + "Per class: that class against the rest. 1 is perfect agreement, 0 what chance gives; – where the answers cannot tell. "
      + `Computed ${new Date(a.computed_at).toLocaleTimeString()}.`),
    h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "dash-agreement-title" },
      h("table", { class: "data agreement" },
        h("caption", {}, "Inter-annotator agreement of the crowd's answers"),
        h("thead", {}, h("tr", {}, head.map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, body))));
}

function savingsPanel(summary, width) {
  const s = summary.savings;
  const items = [
    ["Finished crowd clips", `${s.finished_clips}, using ${s.answers_on_finished} answers (${num(s.mean_answers)} per clip)`],
    ...s.fixed.map((f) => [`Fixed ${f.k} answers per clip`, `would have used ${f.answers}: ${f.saved >= 0 ? "saved" : "cost"} ${Math.abs(f.saved)} (${pct(f.saved_share === null ? null : Math.abs(f.saved_share))}${f.saved < 0 ? " more" : ""})`]),
    ["Quality-control answers", `${s.quality_answers} control and consistency answers (a fixed-redundancy campaign with checks needs them too)`],
    ["All answers used", `${s.answers_used}${summary.status.budget ? ` of a budget of ${summary.status.budget}` : ""}`],
    ["Labels", `${s.labels} of ${s.pool} clips (${pct(s.labels_share)}), seed labels included`],
  ];
  const p = summary.passive;
  const on = p && p.heldout_size ? ` (both scored on the same ${p.heldout_size} held-out random clips)` : "";
  if (p && p.share > 0 && p.model_score !== null && p.passive_labels !== null && p.model_labels <= p.passive_labels) {
    items.push(["Against passive learning", "every label so far was chosen at random (seed and control clips): the comparison starts once the strategy's picks are labelled"]);
  } else if (p && p.share > 0 && p.model_score !== null) {
    const reached = p.passive_labels_needed;
    items.push(["Against passive learning", (reached !== null
      ? `the model's ${num(p.model_score)} with ${p.model_labels} labels took the passive arm ${reached} random labels`
      : p.passive_score !== null
        ? `the model's ${num(p.model_score)} with ${p.model_labels} labels: the passive arm has not reached it yet (${num(p.passive_score)} with ${p.passive_labels} random labels)`
        : `the model's ${num(p.model_score)} with ${p.model_labels} labels: the passive arm has too few labels to score yet`) + on]);
  } else if (p && p.share > 0) {
    items.push(["Against passive learning", "not yet: the model and the passive arm are compared on the passive arm's labelled clips, held out of both fits, once at least 5 of them are labelled"]);
  }
  const dl = h("dl", { class: "figures" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const early = s.finished_clips ? null : h("p", { class: "note" }, "The answer savings appear once crowd clips are finished (each needs its minimum number of answers).");
  const bar = h("progress", { id: "labels-share", max: "1", value: String(s.labels_share || 0) });
  const out = [h("div", {}, early, dl, h("div", { class: "progress" }, h("label", { for: "labels-share" }, "Pool labelled"), bar, h("span", { class: "progress-text" }, pct(s.labels_share))))];
  if (s.finished_clips) {
    out.push(barChart({
      title: "Answers: dynamic against fixed redundancy",
      desc: "Regular answers the finished clips took, against what a fixed number of answers per clip would have taken for the same clips.",
      summary: `Dynamic redundancy used ${s.answers_on_finished} answers where fixed ${s.fixed.map((f) => `${f.k} would use ${f.answers}`).join(" and fixed ")}.`,
      categories: ["dynamic", ...s.fixed.map((f) => `fixed ${f.k}`)],
      series: [{ name: "answers", values: [s.answers_on_finished, ...s.fixed.map((f) => f.answers)], colour: colour(0) }],
      xLabel: "policy",
      yLabel: "answers",
      width,
    }));
  }
  return out;
}

function statusLine(summary) {
  const st = summary.status;
  const bar = h("progress", { id: "dash-progress", max: "1", value: String(st.progress) });
  return [
    h("div", { class: "progress" }, h("label", { for: "dash-progress" }, "Clips finished"), bar, h("span", { class: "progress-text" }, pct(st.progress))),
    h("dl", { class: "figures inline" }, [
      ["Clips (without control questions)", String(st.clips)],
      ["Labels done", String(st.labels_done)],
      ["Low agreement", String(st.low_agreement)],
      ["Answers used", String(st.answers_used)],
      ["Budget left", st.budget_left === null ? "no limit" : String(st.budget_left)],
    ].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
  ];
}

const NO_PREDICTION = "no prediction yet";

function mapGroups(summary, labels) {
  const order = [...summary.classes];
  for (const l of labels) if (!order.includes(l ?? NO_PREDICTION)) order.push(l ?? NO_PREDICTION);
  return order;
}

function mapFigure(summary, data, width) {
  const continuous = summary.task_type === "continuous";
  let groups, groupOf;
  const vals = data.points.map((p) => Number(p[3])).filter((v, i) => data.points[i][3] !== null && Number.isFinite(v));
  if (continuous && vals.length) {
    const lo = Math.min(...vals), hi = Math.max(...vals);
    const ramp = ["#4292c6", "#2b7bba", "#1761a0", "#0b4a84", "#08306b"];
    const step = (hi - lo) / ramp.length || 1;
    groups = ramp.map((c, i) => ({ name: `${num(lo + i * step)} to ${num(lo + (i + 1) * step)}`, colour: c }));
    groups.push({ name: NO_PREDICTION, colour: NO_CATEGORY });
    groupOf = (v) => (v === null || !Number.isFinite(Number(v)) ? ramp.length : Math.min(ramp.length - 1, Math.max(0, Math.floor((Number(v) - lo) / step))));
  } else {
    const names = mapGroups(summary, data.points.map((p) => p[3]));
    groups = names.map((n, i) => (n === NO_PREDICTION ? { name: n, colour: NO_CATEGORY } : { name: n, colour: colour(i), shape: marker(i) }));
    groupOf = (v) => names.indexOf(v ?? NO_PREDICTION);
  }
  const counts = new Map();
  let labelled = 0;
  let pseudo = 0;
  const points = data.points.map(([id, x, y, predicted, label, isPseudo]) => {
    const g = groupOf(predicted);
    counts.set(g, (counts.get(g) || 0) + 1);
    if (label !== null && label !== undefined) labelled += 1;
    if (isPseudo) pseudo += 1;
    const known = label === null || label === undefined ? "" : `, labelled ${label}`;
    const guessed = isPseudo ? ", pseudo-labelled (the model trained on its own prediction; not a label)" : "";
    return { x, y, group: g, ring: label !== null && label !== undefined, tip: `clip ${id}: predicted ${predicted ?? "nothing yet"}${known}${guessed}` };
  });
  const used = groups.map((g, i) => ({ ...g, name: `${g.name} (${counts.get(i) || 0})` })).filter((_, i) => counts.get(i) || !continuous);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([g, n]) => `${groups[g]?.name ?? "?"}: ${n}`);
  const axes = data.explained.length >= 2 ? ` The two axes explain ${pct(data.explained[0])} and ${pct(data.explained[1])} of the feature variance.` : "";
  const rings = (labelled ? ` ${labelled} ringed point${labelled === 1 ? " is" : "s are"} labelled clips.` : "")
    + (pseudo ? ` ${pseudo} clip${pseudo === 1 ? " was" : "s were"} pseudo-labelled by self-training (the model trained on its own confident prediction; these are not labels and are never exported).` : "");
  return scatterPlot({
    title: `Pool map after ${data.labels} labels`,
    desc: `${data.points.length} clips projected to two dimensions (${data.method.toUpperCase()} of the audio features), coloured by the label the model predicts; labelled clips have a dark ring.`,
    summary: `${data.points.length} clips; predicted: ${ranked.join(", ")}.${rings}${axes}`,
    points,
    width,
    groups: continuous ? groups.map((g, i) => ({ ...g, name: `${g.name} (${counts.get(i) || 0})` })) : used,
  });
}

function annotatorTable(rows, threshold, onChange) {
  if (!rows.length) return h("p", { class: "empty" }, "No annotator has answered yet.");
  const head = ["Annotator", "Trust", "Answers", "Control accuracy", "Consistency", "Status", "Actions"];
  const body = rows.map((r) => {
    const status = [];
    if (r.blocked) status.push(h("span", { class: "badge blocked" }, "blocked"));
    if (r.flagged) status.push(h("span", { class: "badge flagged" }, r.flagged_automatically ? "flagged automatically" : "flagged"));
    if (r.flag_reason) status.push(h("span", { class: "flag-reason" }, r.flag_reason));
    if (r.trust !== null && r.trust < threshold) status.push(h("span", { class: "badge low" }, "below trust threshold"));
    if (!status.length) status.push("active");
    const flag = h("button", { type: "button", class: "dash-button small", "aria-label": `${r.flagged ? "Unflag" : "Flag"} ${r.username}`, dataset: { focusKey: `flag:${r.username}` }, onclick: () => onChange(r.username, { flagged: !r.flagged }) }, r.flagged ? "Unflag" : "Flag");
    const block = h("button", { type: "button", class: `dash-button small${r.blocked ? "" : " danger"}`, "aria-label": `${r.blocked ? "Unblock" : "Block"} ${r.username}`, dataset: { focusKey: `block:${r.username}` }, onclick: () => onChange(r.username, { blocked: !r.blocked }) }, r.blocked ? "Unblock" : "Block");
    return h(
      "tr",
      { class: r.blocked ? "is-blocked" : r.flagged ? "is-flagged" : null },
      h("th", { scope: "row", class: "who" }, r.username),
      // data-label: the column's name, shown beside the value where the rows stack (phones)
      h("td", { dataset: { label: head[1] } }, r.trust === null ? "–" : num(r.trust)),
      h("td", { dataset: { label: head[2] } }, String(r.answers)),
      h("td", { dataset: { label: head[3] } }, r.control.checked ? `${pct(r.control.accuracy)} (${r.control.right}/${r.control.checked})` : "no checks yet"),
      h("td", { dataset: { label: head[4] } }, r.consistency.checked ? `${pct(r.consistency.agreement)} (${r.consistency.agreed}/${r.consistency.checked})` : "no repeats yet"),
      h("td", { dataset: { label: head[5] } }, status),
      h("td", { class: "row-actions", dataset: { label: head[6] } }, r.owner ? "project owner" : [flag, block]),
    );
  });
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "dash-annotators-title" },
    h("table", { class: "data annotators" },
      h("caption", {}, "Annotators: trust from control and consistency questions; blocked annotators get no more tasks."),
      h("thead", {}, h("tr", {}, head.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, body)),
  );
}

function exportLinks(pid, taskType) {
  const link = (href, text) => h("li", {}, h("a", { class: "dash-button", href, download: "" }, text));
  const classes = taskType !== "continuous"; // Label Studio's choices and agreement need classes
  return h("ul", { class: "exports" },
    link(`/api/v1/projects/${pid}/export?format=csv`, "Labels (CSV)"),
    link(`/api/v1/projects/${pid}/export?format=jsonl`, "Labels and annotators (JSONL)"),
    link(`/api/v1/projects/${pid}/export?format=csv&table=annotators`, "Annotators (CSV)"),
    link(`/api/v1/projects/${pid}/answers?format=csv`, "Every answer (CSV)"),
    link(`/api/v1/projects/${pid}/export?format=crowdkit`, "Answers for crowd-kit (task, worker, label CSV)"),
    classes ? link(`/api/v1/projects/${pid}/export?format=labelstudio`, "Label Studio tasks (JSON)") : null,
    classes ? link(`/api/v1/projects/${pid}/agreement`, "Agreement statistics (JSON)") : null,
  );
}

/** #/projects/{id}/dashboard: the live view; polls every 5 s until `root` leaves the document.
 *  Resolves once the first view is drawn; returns a function that stops the polling. */
export async function renderDashboard(root, projectId) {
  ensureStylesheet();
  const pid = Number(projectId);
  replace(root, loading("Loading the dashboard…"));
  const [summary, annotators, runs, project] = await Promise.all([
    api("GET", `/projects/${pid}/dashboard`),
    api("GET", `/projects/${pid}/annotators`),
    api("GET", `/projects/${pid}/runs`),
    api("GET", `/projects/${pid}`),
  ]);
  const state = { summary, annotators, runs, mapRun: null, mapKey: null, stopped: false, timer: null, polls: 0 };

  const slots = {
    status: h("div", {}), curve: h("div", {}), labels: h("div", {}), answers: h("div", {}),
    savings: h("div", { class: "savings-body" }), map: h("div", { class: "map-slot" }), annotators: h("div", {}),
    agreement: h("div", {}),
  };
  const updated = h("p", { class: "updated", role: "status", "aria-live": "off" });
  const runSelect = h("select", { id: "dash-run", "aria-describedby": "dash-run-hint" });
  runSelect.addEventListener("change", () => loadMap(true));

  async function changeFlags(username, change) {
    try {
      const out = await api("PATCH", `/projects/${pid}/annotators/${encodeURIComponent(username)}`, change);
      state.annotators = await api("GET", `/projects/${pid}/annotators`);
      drawAnnotators();
      announce(`${out.username} is ${out.blocked ? "blocked" : "not blocked"} and ${out.flagged ? "flagged" : "not flagged"}.`);
    } catch (e) {
      announce(`Could not change ${username}: ${e.message}`);
      slots.annotators.prepend(h("p", { class: "field-error", role: "alert" }, `Could not change ${username}: ${e.message}`));
    }
  }

  function drawAnnotators() {
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focusKey : null;
    replace(slots.annotators, annotatorTable(state.annotators, state.summary.trust_threshold, changeFlags));
    if (focused) {
      const again = slots.annotators.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function drawRuns() {
    const mapped = state.runs.filter((r) => r.has_map);
    const key = mapped.map((r) => r.id).join(",");
    if (key !== state.runsKey) {
      state.runsKey = key;
      const current = runSelect.value;
      const opts = [["", mapped.length ? "Newest map" : "No map yet"]];
      state.runs.forEach((r, i) => {
        if (r.has_map) opts.push([String(r.id), `Round ${i + 1}: ${r.labels} labels${r.score === null ? "" : `, score ${num(r.score)}`}`]);
      });
      fillSelect(runSelect, opts, current);
    }
  }

  async function loadMap(force) {
    const mapped = state.runs.filter((r) => r.has_map);
    const wanted = runSelect.value ? Number(runSelect.value) : mapped.length ? mapped[mapped.length - 1].id : null;
    if (wanted === null) {
      replace(slots.map, h("p", { class: "empty" }, "No map yet: each learning round draws the pool in two dimensions (PCA of the audio features), coloured by the label the model predicts, so you can watch the predictions settle as labels come in."));
      state.mapRun = null;
      return;
    }
    if (!force && wanted === state.mapRun) return;
    state.mapRun = wanted;
    try {
      const data = await api("GET", `/projects/${pid}/runs/${wanted}/map`);
      if (state.mapRun !== wanted) return;
      replace(slots.map, data.points.length ? mapFigure(state.summary, data, slots.map.clientWidth) : h("p", { class: "empty" }, "This round's map has no points."));
    } catch (e) {
      replace(slots.map, h("p", { class: "field-error" }, `The map could not be loaded: ${e.message}`));
    }
  }

  // Redraw a part only when its data (or the width it is drawn at) changed, and keep any
  // "Show the numbers" that was open: a poll must not collapse what someone is reading.
  const drawn = {};
  function redraw(key, slot, data, make) {
    const sig = `${slot.clientWidth}|${JSON.stringify(data)}`;
    if (drawn[key] === sig) return;
    drawn[key] = sig;
    const open = [...slot.querySelectorAll("details")].map((d) => d.open);
    replace(slot, make(key === "savings" ? Math.min(slot.clientWidth, 560) : slot.clientWidth));
    slot.querySelectorAll("details").forEach((d, i) => {
      if (open[i]) d.open = true;
    });
  }

  function draw() {
    const sm = state.summary;
    redraw("status", slots.status, sm.status, () => statusLine(sm));
    redraw("curve", slots.curve, [sm.status.model_scores, sm.status.learning_error], (w) => learningCurve(sm, w));
    redraw("labels", slots.labels, sm.label_distribution, (w) => labelChart(sm, w));
    redraw("answers", slots.answers, sm.answers_histogram, (w) => answersChart(sm, w));
    redraw("savings", slots.savings, [sm.savings, sm.passive, sm.status.budget], (w) => savingsPanel(sm, w));
    redraw("agreement", slots.agreement, sm.agreement, () => agreementPanel(sm));
    const sig = JSON.stringify(state.annotators);
    if (drawn.annotators !== sig) {
      drawn.annotators = sig;
      drawAnnotators();
    }
    drawRuns();
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${POLL_MS / 1000} seconds.`;
    root.dataset.polls = String(state.polls);
  }

  // Uploads and settings are drawn once (the polls never redraw a form being filled in); an
  // empty project shows its upload card first.
  const title = h("h1", {}, `${summary.name}: dashboard`);
  const renamed = (p) => {
    title.textContent = `${p.name}: dashboard`;
  };
  const settings = settingsPanel(project, renamed);
  const dryRun = dryRunPanel(pid);
  const uploads = card("dash-upload", "Add clips", ...uploadForms(pid, settings.relock));
  const empty = summary.status.clips === 0;
  replace(
    root,
    h(
      "div",
      { class: "dash" },
      h("header", { class: "dash-head" },
        title,
        h("p", { class: "lead" }, `Project ${pid} · ${summary.task_type}${summary.classes.length ? ` · ${summary.classes.length} classes` : ""}`),
        updated,
        h("nav", { "aria-label": "Project actions" }, h("a", { href: `#/projects/${pid}/clips`, class: "dash-button primary" }, "Browse clips"), " ", h("a", { href: `#/projects/${pid}/clips?review=all`, class: "dash-button" }, "Review queue"), " ", h("a", { href: `#/projects/${pid}/label`, class: "dash-button" }, "Label clips yourself"), " ", h("a", { href: "#/projects", class: "dash-button" }, "All projects")),
        draftNotice(project, summary.status.clips, renamed)),
      h("div", { class: "dash-grid" },
        empty ? uploads : null,
        card("dash-progress-card", "Progress", slots.status),
        card("dash-curve", "Learning curve", slots.curve),
        card("dash-labels", "Labels", slots.labels),
        card("dash-answers", "Answers per clip", slots.answers),
        card("dash-savings", "Savings", slots.savings),
        card("dash-dry-run", "Dry run: which strategy pays on your data", dryRun.element),
        card("dash-map", "Map of the pool",
          h("div", { class: "field" }, h("label", { for: "dash-run" }, "Model version"), runSelect, h("p", { class: "hint", id: "dash-run-hint" }, "Pick a learning round to see how its predictions spread over the pool.")),
          slots.map),
        card("dash-annotators", "Annotators", slots.annotators),
        card("dash-agreement", "Agreement", slots.agreement),
        empty ? null : uploads,
        card("dash-settings", "Settings", settings.element),
        card("dash-lifecycle", "Pause, archive or delete", lifecyclePanel(project)),
        card("dash-export", "Export", h("p", {}, "Download labels with their confidence and soft distribution, annotators' trust, or every answer."), exportLinks(pid, summary.task_type)),
      ),
    ),
  );
  draw();
  await Promise.all([loadMap(true), dryRun.refresh().catch(() => {})]);

  async function tick() {
    state.timer = null;
    if (state.stopped) return;
    if (!root.isConnected) {
      state.stopped = true;
      return;
    }
    try {
      const [s, a, r] = await Promise.all([
        api("GET", `/projects/${pid}/dashboard`),
        api("GET", `/projects/${pid}/annotators`),
        api("GET", `/projects/${pid}/runs`),
      ]);
      if (state.stopped || !root.isConnected) return;
      Object.assign(state, { summary: s, annotators: a, runs: r });
      state.polls += 1;
      draw();
      await Promise.all([loadMap(false), dryRun.refresh()]);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        updated.textContent = "Your session ended: sign in again to see new numbers.";
        state.stopped = true;
        return;
      }
      updated.textContent = `Could not refresh (${e.message}); trying again.`;
    }
    if (!state.stopped && root.isConnected) state.timer = setTimeout(tick, POLL_MS);
  }
  state.timer = setTimeout(tick, POLL_MS);
  return () => {
    state.stopped = true;
    if (state.timer) clearTimeout(state.timer);
  };
}
