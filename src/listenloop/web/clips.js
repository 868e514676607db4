// The owner's clip browser (#/projects/{id}/clips): filter a project's clips by status, class,
// confidence, annotator and source; a sorted, paged table; one clip's panel with its audio and
// spectrogram, label and where it comes from, soft label, the model's prediction and every
// answer; and the owner's correction of its label (an expert answer). The filters and the open
// clip live in the address (#/projects/3/clips?status=done&clip=12), replaced without a route
// change, so a reload or a shared link shows the same view. The server does the filtering and
// paging (GET /projects/{id}/clips); this module only draws. No inline styles (the page's CSP):
// the bars are SVG attributes, the rest /static/clips.css.
//
// The review queue (?review=all|low_agreement|disagreement|cant_tell; GET /projects/{id}/review)
// lists the clips where a correction changes most, highest score first (the server computes
// the score); there the panel also offers "Discard" and "also a control question". Reviewers
// (members with the reviewer role) use the same page.

import { api, ApiError } from "./api.js";
import { announce, h, replace } from "./dom.js";
import { colour } from "./charts.js";

const CANT_TELL = "can't tell";
const PAGE_SIZES = [25, 50, 100, 200];
const FILTER_KEYS = ["status", "label", "min_confidence", "max_confidence", "annotator", "source", "sort", "offset", "limit", "review"];
const REVIEW_KINDS = [
  ["all", "Everything to review"],
  ["low_agreement", "Low agreement"],
  ["disagreement", "The model disagrees with the crowd"],
  ["cant_tell", "Mostly \"can't tell\""],
];
const REASON_NAMES = { low_agreement: "low agreement", disagreement: "model disagrees", cant_tell: "mostly can't tell" };
const STATUS_NAMES = {
  queued: "queued",
  done: "done",
  low_agreement: "low agreement",
  control: "control question",
  pool: "waiting (stream)",
  passed: "passed (stream)",
  discarded: "discarded",
};
const SOURCE_NAMES = { crowd: "crowd", expert: "expert (owner)", seed: "seed", gold: "known answer" };
const SORTS = [
  ["id", "Clip id"],
  ["-id", "Newest clips first"],
  ["confidence", "Lowest confidence first"],
  ["-confidence", "Highest confidence first"],
  ["-answers", "Most answers first"],
  ["-updated", "Recently changed first"],
  ["file", "File name"],
];

function ensureStylesheets() {
  for (const href of ["/static/dashboard.css", "/static/clips.css"]) {
    if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h("link", { rel: "stylesheet", href }));
  }
}

function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function shown(label) {
  if (label === null || label === undefined) return "–";
  return label === "" ? "(no tag)" : label.split("|").join(", ");
}

/** The filters in the address after "?": {status, label, ..., clip}. */
function readQuery(text) {
  const params = new URLSearchParams(text || "");
  const out = {};
  for (const key of [...FILTER_KEYS, "clip"]) if (params.get(key)) out[key] = params.get(key);
  return out;
}

function queryString(filters, extra) {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const v = filters[key];
    if (v === undefined || v === null || v === "") continue;
    if ((key === "offset" && Number(v) === 0) || (key === "sort" && v === "id") || (key === "limit" && Number(v) === 50)) continue;
    params.set(key, v);
  }
  for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined && v !== "") params.set(k, v);
  return params.toString();
}

function badge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS_NAMES[status] || status);
}

const FINISHED = ["done", "low_agreement"];

/** Where a label comes from; the crowd's label of an unfinished clip is only its lean so far. */
function sourceTag(source, status) {
  if (source === "crowd" && !FINISHED.includes(status)) return h("span", { class: "source source-provisional" }, "crowd, so far");
  return h("span", { class: `source source-${source}` }, SOURCE_NAMES[source] || source);
}

/** One horizontal bar per class with a share, largest first (SVG attributes only). */
function softBars(soft, classes) {
  const entries = Object.entries(soft || {}).filter(([, v]) => v > 0);
  if (!entries.length) return h("p", { class: "empty" }, "No class answers yet: the soft label comes from the crowd's answers.");
  entries.sort((a, b) => b[1] - a[1]);
  const list = h("ul", { class: "soft-bars", "aria-label": "Soft label: each class's trust-weighted share of the answers" });
  for (const [name, share] of entries) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "bar");
    const track = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({ x: 0, y: 0, width: 100, height: 10, class: "track" })) track.setAttribute(k, String(v));
    const fill = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const i = classes.indexOf(name);
    for (const [k, v] of Object.entries({ x: 0, y: 0, width: Math.max(0.5, share * 100), height: 10, fill: colour(i < 0 ? classes.length : i) })) fill.setAttribute(k, String(v));
    svg.append(track, fill);
    list.append(h("li", {}, h("span", { class: "soft-name" }, name), svg, h("span", { class: "soft-value" }, pct(share))));
  }
  return list;
}

/** The correction control for the project's task: a class, tags, or a number; in the review
 *  queue also "use as a control question" (classes only) and "Discard". */
function correctionForm(clip, onSave, onDiscard) {
  const id = `fix-${clip.clip_id}`;
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  let control;
  let value;
  if (clip.task_type === "multilabel") {
    const current = new Set((clip.label || "").split("|").filter(Boolean));
    const boxes = clip.classes.map((c, i) => h("label", { class: "tag-choice" }, h("input", { type: "checkbox", name: "tag", value: c, checked: current.has(c), id: `${id}-tag-${i}` }), ` ${c}`));
    control = h("fieldset", { class: "tag-choices" }, h("legend", {}, "Tags present"), boxes);
    value = () => boxes.map((b) => b.querySelector("input")).filter((x) => x.checked).map((x) => x.value);
  } else if (clip.task_type === "continuous") {
    control = h("input", { type: "number", step: "any", id, value: clip.label ?? "", "aria-describedby": `${id}-error` });
    value = () => control.value.trim();
  } else {
    const options = [h("option", { value: "" }, "Choose a class…"), ...clip.classes.map((c) => h("option", { value: c, selected: c === clip.label }, c))];
    control = h("select", { id, "aria-describedby": `${id}-error` }, options);
    value = () => control.value;
  }
  const save = h("button", { type: "submit", class: "dash-button primary" }, clip.expert ? "Replace the expert label" : "Set label");
  const asControl = onDiscard && clip.task_type !== "continuous"
    ? h("input", { type: "checkbox", id: `${id}-control`, name: "control" })
    : null;
  const discard = onDiscard && clip.status !== "discarded" && clip.seed_label === null
    ? h("button", { type: "button", class: "dash-button danger", id: `${id}-discard`, onclick: async () => {
      discard.disabled = true;
      try {
        await onDiscard();
      } catch (e) {
        error.textContent = e instanceof ApiError ? e.message : "The server could not be reached; try again.";
        discard.disabled = false;
      }
    } }, "Discard clip")
    : null;
  const form = h(
    "form",
    { class: "correction", "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, "Correct the label"),
    clip.task_type === "multilabel"
      ? [control, h("div", { class: "actions" }, save)]
      : h("div", { class: "correction-row" }, h("label", { for: id }, clip.task_type === "continuous" ? "Rating" : "Class"), control, save),
    asControl ? h("p", { class: "control-choice" }, h("label", { for: `${id}-control` }, asControl, " Also use it as a control question")) : null,
    discard ? h("p", { class: "discard-row" }, discard, h("span", { class: "hint" }, " Out of the dataset: no label, no training, served to nobody.")) : null,
    error,
    h("p", { class: "hint" }, "Stored as your expert answer: it overrides the crowd's label, the clip counts as done, and exports mark it source expert."),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = value();
    if (v === "" && clip.task_type !== "multilabel") {
      error.textContent = clip.task_type === "continuous" ? "Enter a number." : "Choose a class.";
      control.focus();
      return;
    }
    error.textContent = "";
    save.disabled = true;
    try {
      await onSave(v, asControl ? asControl.checked : false);
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : "The server could not be reached; try again.";
      save.disabled = false;
    }
  });
  if (clip.source === "gold") {
    return h("div", { class: "correction" }, h("h3", {}, "Correct the label"), h("p", { class: "hint" }, "This is a control question: its known answer comes from the control-question upload."));
  }
  return form;
}

function answersTable(clip) {
  if (!clip.answers.length) return h("p", { class: "empty" }, "Nobody has answered this clip yet.");
  const more = clip.answers_total > clip.answers.length ? h("p", { class: "hint" }, `The newest ${clip.answers.length} of ${clip.answers_total} answers.`) : null;
  return [
    more,
    h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Answers to this clip" },
      h("table", { class: "data answers" },
        h("caption", {}, `${clip.answers_total} answer${clip.answers_total === 1 ? "" : "s"}: regular, control and repeat questions, and your corrections.`),
        h("thead", {}, h("tr", {}, ["Annotator", "Answer", "Kind", "Trust", "When"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, clip.answers.map((a) => h("tr", { class: a.kind === "expert" ? "is-expert" : null },
          h("th", { scope: "row" }, a.annotator),
          h("td", {}, a.answer === CANT_TELL ? h("em", {}, CANT_TELL) : shown(a.answer)),
          h("td", {}, a.kind === "consistency" ? "repeat" : a.kind),
          h("td", {}, a.trust === null ? "–" : a.trust.toFixed(2)),
          h("td", {}, h("time", { datetime: a.answered_at }, when(a.answered_at)))))))),
  ];
}

function predictionText(clip) {
  const p = clip.prediction;
  if (!p) return "No learning round has drawn a map yet, so there is no prediction.";
  const round = `Round ${p.round} (${p.labels} training labels)`;
  if (!p.in_sample) return `${round}: this clip was not in the round's map sample, so its prediction was not stored.`;
  const agree = clip.label === null || clip.label === undefined ? "" : p.label === clip.label ? ", as labelled" : `, not ${shown(clip.label)}`;
  return `${round} predicts ${shown(p.label)}${agree}.`;
}

/** #/projects/{id}/clips: draws the browser into `root`; returns a cleanup function. */
export async function renderClips(root, projectId, queryText) {
  ensureStylesheets();
  const pid = Number(projectId);
  // reviewers may not list the annotators (an owner's page): the filter then offers nobody
  const [project, annotators] = await Promise.all([api("GET", `/projects/${pid}`), api("GET", `/projects/${pid}/annotators`).catch(() => [])]);
  const classes = project.classes || [];
  const continuous = project.task_type === "continuous";
  const initial = readQuery(queryText);
  const state = { filters: { sort: "id", offset: 0, limit: 50, ...initial }, page: null, openId: initial.clip ? Number(initial.clip) : null, seq: 0, detailSeq: 0, alive: true };
  delete state.filters.clip;

  // ---- filter form ----
  const f = {};
  const sel = (id, options, value) => {
    const el = h("select", { id }, options.map(([v, text]) => h("option", { value: v }, text)));
    el.value = options.some(([v]) => v === (value ?? "")) ? value ?? "" : "";
    return el;
  };
  const statusOptions = [["", "Any status"], ["queued", "Queued"], ["done", "Done"], ["low_agreement", "Low agreement"], ["control", "Control questions"], ["done,low_agreement", "Finished"], ["discarded", "Discarded"]];
  if (project.mode === "stream") statusOptions.push(["pool", "Waiting (stream)"], ["passed", "Passed (stream)"]);
  f.status = sel("cf-status", statusOptions, state.filters.status);
  f.label = sel("cf-label", [["", "Any class"], ...classes.map((c) => [c, c]), [CANT_TELL, CANT_TELL]], state.filters.label);
  f.min = h("input", { id: "cf-min", type: "number", min: "0", max: "1", step: "0.05", inputmode: "decimal", placeholder: "0", value: state.filters.min_confidence ?? "" });
  f.max = h("input", { id: "cf-max", type: "number", min: "0", max: "1", step: "0.05", inputmode: "decimal", placeholder: "1", value: state.filters.max_confidence ?? "" });
  f.annotator = sel("cf-annotator", [["", "Anyone"], ...annotators.map((a) => [a.username, a.owner ? `${a.username} (you)` : a.username])], state.filters.annotator);
  f.source = sel("cf-source", [["", "Any source"], ["crowd", "Crowd"], ["expert", "Expert (yours)"], ["seed", "Seed"], ["gold", "Known answer (control)"]], state.filters.source);
  f.sort = sel("cf-sort", SORTS, state.filters.sort);
  const filterError = h("p", { class: "field-error", id: "cf-error", role: "alert" });
  const labelField = h("div", { class: "field" }, h("label", { for: "cf-label" }, project.task_type === "multilabel" ? "Tag" : "Class"), f.label);
  labelField.hidden = continuous;
  const form = h(
    "form",
    { class: "dash-card clip-filters", role: "search", "aria-label": "Filter the clips", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "cf-status" }, "Status"), f.status),
    labelField,
    h("div", { class: "field confidence" },
      h("span", { class: "field-label", id: "cf-conf-label" }, "Confidence"),
      h("span", { class: "range-pair", role: "group", "aria-labelledby": "cf-conf-label" },
        f.min, h("span", { "aria-hidden": "true" }, "to"), f.max)),
    h("div", { class: "field" }, h("label", { for: "cf-annotator" }, "Answered by"), f.annotator),
    h("div", { class: "field" }, h("label", { for: "cf-source" }, "Label source"), f.source),
    h("div", { class: "filter-actions" },
      h("button", { type: "submit", class: "dash-button primary" }, "Apply"),
      h("button", { type: "button", class: "dash-button", id: "cf-reset", onclick: () => reset() }, "Reset")),
    filterError,
  );
  f.review = sel("review-kind", REVIEW_KINDS, state.filters.review || "all");
  f.review.addEventListener("change", () => {
    state.filters = { review: f.review.value, offset: 0, limit: state.filters.limit };
    load();
  });
  const reviewForm = h(
    "div",
    { class: "dash-card review-filters", role: "search", "aria-label": "The review queue" },
    h("div", { class: "field" }, h("label", { for: "review-kind" }, "Review"), f.review),
    h("p", { class: "hint", id: "review-score" }, "Highest score first: the chance that your label changes the crowd's (1 minus its soft-label share), plus 1 when the clip has no training label yet."),
  );
  f.min.setAttribute("aria-label", "Lowest confidence");
  f.max.setAttribute("aria-label", "Highest confidence");

  function readForm() {
    const out = { sort: f.sort.value, offset: 0, limit: state.filters.limit };
    if (f.status.value) out.status = f.status.value;
    if (f.label.value && !continuous) out.label = f.label.value;
    if (f.min.value !== "") out.min_confidence = f.min.value;
    if (f.max.value !== "") out.max_confidence = f.max.value;
    if (f.annotator.value) out.annotator = f.annotator.value;
    if (f.source.value) out.source = f.source.value;
    return out;
  }

  function checkForm(v) {
    for (const [key, el] of [["min_confidence", f.min], ["max_confidence", f.max]]) {
      el.removeAttribute("aria-invalid");
      if (v[key] === undefined) continue;
      const x = Number(v[key]);
      if (!Number.isFinite(x) || x < 0 || x > 1) {
        el.setAttribute("aria-invalid", "true");
        return [el, "Confidence bounds are numbers from 0 to 1."];
      }
    }
    if (v.min_confidence !== undefined && v.max_confidence !== undefined && Number(v.min_confidence) > Number(v.max_confidence)) {
      f.max.setAttribute("aria-invalid", "true");
      return [f.max, "The lowest confidence is above the highest."];
    }
    return null;
  }

  function apply() {
    const v = readForm();
    const problem = checkForm(v);
    filterError.textContent = problem ? problem[1] : "";
    if (problem) {
      problem[0].focus();
      return;
    }
    state.filters = v;
    load();
  }

  function reset() {
    for (const el of [f.status, f.label, f.annotator, f.source]) el.value = "";
    f.min.value = "";
    f.max.value = "";
    f.sort.value = "id";
    apply();
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  for (const el of [f.status, f.label, f.annotator, f.source, f.sort]) el.addEventListener("change", apply);

  const modeLink = h("a", { class: "dash-button", id: "review-link", onclick: (ev) => {
    ev.preventDefault();
    state.filters = state.filters.review ? { sort: "id", offset: 0, limit: state.filters.limit } : { review: "all", offset: 0, limit: state.filters.limit };
    state.openId = null;
    drawMode();
    drawDetailEmpty();
    load();
  } }, "Review queue");

  // ---- results and detail ----
  const heading = h("h2", { id: "clips-results-title" }, "Clips");
  const summary = h("p", { class: "results-summary", role: "status" });
  const tableSlot = h("div", { class: "clips-table-slot", "aria-busy": "true" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of clips" });
  const detail = h("section", { class: "dash-card clip-detail", id: "clip-detail", "aria-labelledby": "clip-detail-title", tabindex: "-1" });
  const layout = h("div", { class: "clips-layout" },
    h("section", { class: "dash-card clips-results", "aria-labelledby": "clips-results-title" }, h("div", { class: "results-head" }, h("div", {}, heading, summary), h("div", { class: "sort-field" }, h("label", { for: "cf-sort" }, "Sort"), f.sort)), tableSlot, pager),
    detail);

  replace(
    root,
    h("div", { class: "dash clips" },
      h("header", { class: "dash-head" },
        h("h1", {}, `${project.name}: clips`),
        h("p", { class: "lead" }, `Project ${pid} · ${project.task_type}${classes.length ? ` · ${classes.length} ${project.task_type === "multilabel" ? "tags" : "classes"}` : ""} · filter, listen, and correct labels.`),
        h("nav", { "aria-label": "Project pages" },
          "answers_used" in project ? [h("a", { href: `#/projects/${pid}/dashboard`, class: "dash-button" }, "Dashboard"), " "] : null,
          modeLink, " ",
          h("a", { href: `#/projects/${pid}/label`, class: "dash-button" }, "Label clips yourself"), " ",
          h("a", { href: "#/projects", class: "dash-button" }, "All projects"))),
      form,
      reviewForm,
      layout),
  );
  drawDetailEmpty();
  drawMode();

  function drawMode() {
    const review = Boolean(state.filters.review);
    form.hidden = review;
    reviewForm.hidden = !review;
    f.sort.parentElement.hidden = review;
    modeLink.textContent = review ? "All clips" : "Review queue";
    modeLink.setAttribute("href", review ? `#/projects/${pid}/clips` : `#/projects/${pid}/clips?review=all`);
    if (review) f.review.value = state.filters.review;
  }

  function syncAddress() {
    const q = queryString(state.filters, { clip: state.openId });
    const hash = `#/projects/${pid}/clips${q ? `?${q}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  async function load() {
    const seq = ++state.seq;
    tableSlot.setAttribute("aria-busy", "true");
    syncAddress();
    let page;
    const review = state.filters.review;
    try {
      if (review) {
        const q = new URLSearchParams({ kind: review, offset: String(state.filters.offset || 0), limit: String(state.filters.limit || 50) });
        page = await api("GET", `/projects/${pid}/review?${q}`);
      } else {
        page = await api("GET", `/projects/${pid}/clips?${queryString(state.filters) || "sort=id"}`);
      }
    } catch (e) {
      if (seq !== state.seq) return;
      tableSlot.removeAttribute("aria-busy");
      if (e instanceof ApiError && e.status === 422) {
        filterError.textContent = e.message;
        replace(tableSlot, h("p", { class: "empty" }, "Fix the filters above to see clips."));
      } else {
        replace(tableSlot, h("p", { class: "field-error" }, `The clips could not be loaded: ${e.message}`));
      }
      replace(summary);
      replace(pager);
      return;
    }
    if (seq !== state.seq || !state.alive) return;
    state.page = page;
    filterError.textContent = "";
    tableSlot.removeAttribute("aria-busy");
    drawTable();
    drawPager();
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.clips.length;
    heading.textContent = `${page.total.toLocaleString("en")} clip${page.total === 1 ? "" : "s"}${review ? " to review" : ""}`;
    const run = page.prediction_run;
    const predicted = run ? `; predictions from learning round ${run.round} (${run.labels} labels)` : "; no learning round has predicted yet";
    const none = review ? "Nothing to review: no clip of this kind waits for your ear." : "No clip matches these filters.";
    summary.textContent = page.total ? `Showing ${first}–${last} of ${page.total.toLocaleString("en")}${predicted}` : none;
    announce(summary.textContent);
  }

  function drawTable() {
    const page = state.page;
    if (!page.clips.length) {
      const none = state.filters.review ? "Nothing to review here." : "No clip matches these filters. Try fewer filters, or Reset.";
      replace(tableSlot, h("p", { class: "empty" }, page.total ? "This page is past the last clip." : none));
      return;
    }
    const review = Boolean(state.filters.review);
    const head = review ? ["Clip", "Why", "Crowd's label", "Predicted", "Answers", "Score"] : ["Clip", "Status", "Label", "Confidence", "Answers", "Predicted"];
    const rows = page.clips.map((c) => {
      if (review) return reviewRow(c);
      const open = c.clip_id === state.openId;
      const button = h("button", { type: "button", class: "clip-open", "aria-expanded": open ? "true" : "false", "aria-controls": "clip-detail", dataset: { clip: String(c.clip_id) }, onclick: () => openClip(c.clip_id, true) },
        h("span", { class: "clip-file" }, c.file), h("span", { class: "clip-id" }, `#${c.clip_id} · ${c.duration.toFixed(1)} s`));
      const differs = c.predicted !== null && c.label !== null && c.predicted !== c.label;
      return h("tr", { class: open ? "is-open" : null, "aria-current": open ? "true" : null, dataset: { clip: String(c.clip_id) } },
        h("th", { scope: "row" }, button),
        h("td", {}, badge(c.status)),
        h("td", {}, h("span", { class: "clip-label" }, shown(c.label)), c.label !== null ? [" ", sourceTag(c.source, c.status)] : null),
        h("td", { class: "num" }, confidenceCell(c.confidence)),
        h("td", { class: "num" }, String(c.n_answers)),
        h("td", { class: differs ? "differs" : null }, c.predicted === null ? h("span", { class: "muted" }, "–") : [shown(c.predicted), differs ? h("span", { class: "visually-hidden" }, " (differs from the label)") : null]),
      );
    });
    for (const tr of rows) tr.addEventListener("click", (ev) => {
      if (ev.target.closest("button, a")) return;
      openClip(Number(tr.dataset.clip), true);
    });
    replace(tableSlot, h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "clips-results-title" },
      h("table", { class: "data clips-table" },
        h("caption", { class: "visually-hidden" }, "Clips of the project; open one to hear it, see its answers and correct its label."),
        h("thead", {}, h("tr", {}, head.map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows))));
  }

  function reviewRow(c) {
    const open = c.clip_id === state.openId;
    const button = h("button", { type: "button", class: "clip-open", "aria-expanded": open ? "true" : "false", "aria-controls": "clip-detail", dataset: { clip: String(c.clip_id) }, onclick: () => openClip(c.clip_id, true) },
      h("span", { class: "clip-file" }, c.file), h("span", { class: "clip-id" }, `#${c.clip_id} · ${c.duration.toFixed(1)} s`));
    const differs = c.predicted !== null && c.label !== null && c.predicted !== c.label;
    return h("tr", { class: open ? "is-open" : null, "aria-current": open ? "true" : null, dataset: { clip: String(c.clip_id) } },
      h("th", { scope: "row" }, button),
      h("td", { class: "reasons" }, c.reasons.map((r) => h("span", { class: `badge reason-${r}` }, REASON_NAMES[r] || r))),
      h("td", {}, shown(c.label), c.label !== null ? h("span", { class: "muted" }, ` ${pct(c.confidence)}`) : null),
      h("td", { class: differs ? "differs" : null }, c.predicted === null ? h("span", { class: "muted" }, "–") : shown(c.predicted)),
      h("td", { class: "num" }, c.cant_tell ? `${c.n_answers} (${c.cant_tell} can't tell)` : String(c.n_answers)),
      h("td", { class: "num score", title: `chance of a change ${pct(c.p_change)}${c.adds_label ? " + a new training label" : ""}` }, c.score.toFixed(2)));
  }

  function confidenceCell(x) {
    if (x === null || x === undefined) return h("span", { class: "muted" }, "–");
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 40 6");
    svg.setAttribute("class", "conf-bar");
    svg.setAttribute("aria-hidden", "true");
    const track = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({ width: 40, height: 6, class: "track" })) track.setAttribute(k, String(v));
    const fill = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({ width: Math.max(1, x * 40), height: 6, class: x >= 0.9 ? "high" : x >= 0.6 ? "mid" : "low" })) fill.setAttribute(k, String(v));
    svg.append(track, fill);
    return [svg, " ", pct(x)];
  }

  function drawPager() {
    const { total, offset, limit } = state.page;
    const pages = Math.max(1, Math.ceil(total / limit));
    const current = Math.floor(offset / limit) + 1;
    const go = (to) => {
      state.filters = { ...state.filters, offset: Math.max(0, (to - 1) * limit) };
      load().then(() => tableSlot.querySelector(".table-scroll")?.focus());
    };
    const size = h("select", { id: "cf-limit" }, PAGE_SIZES.map((n) => h("option", { value: String(n), selected: n === Number(limit) }, String(n))));
    size.addEventListener("change", () => {
      state.filters = { ...state.filters, limit: Number(size.value), offset: 0 };
      load();
    });
    replace(pager,
      h("button", { type: "button", class: "dash-button small", disabled: current <= 1, onclick: () => go(current - 1) }, "← Previous"),
      h("span", { class: "page-of" }, `Page ${current} of ${pages}`),
      h("button", { type: "button", class: "dash-button small", disabled: current >= pages, onclick: () => go(current + 1) }, "Next →"),
      h("span", { class: "page-size" }, h("label", { for: "cf-limit" }, "Rows per page"), size));
  }

  function drawDetailEmpty() {
    replace(detail,
      h("h2", { id: "clip-detail-title" }, "No clip open"),
      h("p", { class: "empty" }, "Open a clip in the table to hear it, see who answered what, its soft label and the model's prediction, and to correct its label."),
      exampleSearch());
  }

  /** The pool's clips nearest to an example, each with a label control (the owner's expert answer). */
  function similarTable(result, caption) {
    if (!result.neighbours.length) return h("p", { class: "empty" }, "No clip of the pool has features yet.");
    const labelled = project.task_type === "classification" || project.task_type === "binary";
    const rows = result.neighbours.map((n) => {
      const labelCell = h("td", { class: "sim-label" }, n.label === null ? "–" : [shown(n.label), " ", sourceTag(n.source, n.status)]);
      let action = h("td", {}, h("button", { type: "button", class: "dash-button small", onclick: () => openClip(n.clip_id, true) }, "Open to label"));
      if (labelled) {
        const id = `sim-${n.clip_id}-class`;
        const select = h("select", { id, "aria-label": `Class of ${n.file}` }, [h("option", { value: "" }, "Class…"), ...classes.map((c) => h("option", { value: c, selected: c === n.label && n.source === "expert" }, c))]);
        const set = h("button", { type: "button", class: "dash-button small" }, "Set");
        set.addEventListener("click", async () => {
          if (!select.value) {
            select.focus();
            return;
          }
          set.disabled = true;
          try {
            const fixed = await api("POST", `/projects/${pid}/clips/${n.clip_id}/label`, { label: select.value });
            replace(labelCell, shown(fixed.label), " ", sourceTag(fixed.source, fixed.status));
            announce(`Label of ${fixed.file} set to ${shown(fixed.label)}.`);
          } catch (e) {
            announce(e instanceof ApiError ? e.message : "The server could not be reached; try again.");
          } finally {
            set.disabled = false;
          }
        });
        action = h("td", { class: "sim-set" }, select, set);
      }
      return h("tr", { "data-clip": String(n.clip_id) },
        h("th", { scope: "row" }, h("button", { type: "button", class: "link-button", onclick: () => openClip(n.clip_id, true) }, n.file)),
        h("td", { class: "num" }, n.distance.toFixed(2)),
        labelCell,
        h("td", {}, badge(n.status)),
        action);
    });
    const note = result.index.kind === "ivf" ? " (approximate index)" : "";
    return [
      result.index.stale ? h("p", { class: "hint" }, "The index predates the newest features: clips added since are not searched yet.") : null,
      h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption },
        h("table", { class: "data similar" },
          h("caption", {}, `${caption}${note}, nearest first`),
          h("thead", {}, h("tr", {}, ["Clip", "Distance", "Label", "Status", labelled ? "Set label" : ""].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, rows))),
    ];
  }

  /** "Find similar clips" for an open clip. */
  function similarPanel(clip) {
    const out = h("div", { class: "similar-result", "aria-live": "polite" });
    const button = h("button", { type: "button", class: "dash-button small find-similar" }, "Find similar clips");
    button.addEventListener("click", async () => {
      button.disabled = true;
      replace(out, h("p", { class: "hint" }, "Searching…"));
      try {
        const result = await api("GET", `/projects/${pid}/clips/${clip.clip_id}/similar?k=10`);
        replace(out, similarTable(result, `The ${result.neighbours.length} clips nearest to ${clip.file}`));
      } catch (e) {
        replace(out, h("p", { class: "field-error" }, e instanceof ApiError ? e.message : "The server could not be reached; try again."));
      } finally {
        button.disabled = false;
      }
    });
    return h("section", { class: "similar-search" },
      h("h3", {}, "Similar clips"),
      h("p", { class: "hint" }, "The pool's nearest clips in the project's feature space: label them to seed a rare class."),
      button, out);
  }

  /** Search by an audio file of the owner's (nothing is stored). */
  function exampleSearch() {
    const out = h("div", { class: "similar-result", "aria-live": "polite" });
    const file = h("input", { type: "file", id: "sim-file", accept: "audio/*,.wav,.flac,.ogg,.mp3" });
    const form = h("form", { class: "similar-upload" },
      h("h3", {}, "Search by example"),
      h("label", { for: "sim-file" }, "An audio file like the clips you look for"), " ", file, " ",
      h("button", { type: "submit", class: "dash-button small" }, "Find similar clips"),
      out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!file.files.length) {
        replace(out, h("p", { class: "field-error" }, "Choose an audio file."));
        file.focus();
        return;
      }
      const data = new FormData();
      data.append("audio", file.files[0]);
      replace(out, h("p", { class: "hint" }, "Searching…"));
      try {
        const result = await api("POST", `/projects/${pid}/similar?k=10`, data);
        replace(out, similarTable(result, `The ${result.neighbours.length} clips nearest to ${file.files[0].name}`));
      } catch (e) {
        replace(out, h("p", { class: "field-error" }, e instanceof ApiError ? e.message : "The server could not be reached; try again."));
      }
    });
    return form;
  }

  function neighbour(step) {
    const list = state.page ? state.page.clips : [];
    const i = list.findIndex((c) => c.clip_id === state.openId);
    return i < 0 ? null : list[i + step] || null;
  }

  async function openClip(clipId, focus) {
    const seq = ++state.detailSeq;
    state.openId = clipId;
    syncAddress();
    for (const tr of tableSlot.querySelectorAll("tbody tr")) {
      const open = Number(tr.dataset.clip) === clipId;
      tr.classList.toggle("is-open", open);
      if (open) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
      tr.querySelector("button.clip-open")?.setAttribute("aria-expanded", open ? "true" : "false");
    }
    detail.setAttribute("aria-busy", "true");
    let clip;
    try {
      clip = await api("GET", `/projects/${pid}/clips/${clipId}`);
    } catch (e) {
      if (seq !== state.detailSeq) return;
      detail.removeAttribute("aria-busy");
      replace(detail, h("h2", { id: "clip-detail-title" }, `Clip ${clipId}`), h("p", { class: "field-error" }, e.message));
      return;
    }
    if (seq !== state.detailSeq || !state.alive) return;
    detail.removeAttribute("aria-busy");
    drawDetail(clip);
    if (focus) {
      detail.querySelector("h2").focus();
      if (window.matchMedia("(max-width: 959px)").matches) detail.scrollIntoView({ block: "start" });
    }
  }

  function closeClip() {
    const was = state.openId;
    state.openId = null;
    state.detailSeq += 1;
    syncAddress();
    drawDetailEmpty();
    for (const tr of tableSlot.querySelectorAll("tbody tr.is-open")) {
      tr.classList.remove("is-open");
      tr.removeAttribute("aria-current");
    }
    const button = tableSlot.querySelector(`button.clip-open[data-clip="${was}"]`);
    if (button) {
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  }

  async function discard(clip) {
    const gone = await api("POST", `/projects/${pid}/clips/${clip.clip_id}/discard`);
    drawDetail(gone);
    const msg = `${gone.file} is discarded: out of the dataset.`;
    const note = detail.querySelector(".saved");
    if (note) note.textContent = msg;
    announce(msg);
    await load();
  }

  async function save(clip, value, control) {
    const body = control ? { label: value, control: true } : { label: value };
    const fixed = await api("POST", `/projects/${pid}/clips/${clip.clip_id}/label`, body);
    drawDetail(fixed);
    const msg = `Label of ${fixed.file} set to ${shown(fixed.label)}; the clip is done.`;
    const note = detail.querySelector(".saved");
    if (note) note.textContent = msg;
    announce(msg);
    // the row changes (status, label, source) and may leave the filter: reload the page
    await load();
    detail.querySelector(".correction button[type=submit]")?.focus();
  }

  function drawDetail(clip) {
    const prev = neighbour(-1);
    const next = neighbour(1);
    const title = h("h2", { id: "clip-detail-title", tabindex: "-1" }, clip.file);
    const audio = h("audio", { controls: true, preload: "none", src: clip.audio_url, class: "clip-audio", "aria-label": `Audio of ${clip.file}` });
    const spectrogram = h("img", { src: clip.spectrogram_url, alt: `Spectrogram of ${clip.file}`, class: "clip-spectrogram", loading: "lazy", width: "800", height: "300" });
    spectrogram.addEventListener("click", () => (audio.paused ? audio.play() : audio.pause()));
    const labelLine = clip.label === null || clip.label === undefined
      ? h("p", { class: "big-label muted" }, "No label yet")
      : h("p", { class: "big-label" }, h("span", { class: "clip-label" }, shown(clip.label)), " ", sourceTag(clip.source, clip.status), clip.confidence === null ? null : h("span", { class: "conf" }, ` ${pct(clip.confidence)} confident`));
    const facts = [
      ["Status", badge(clip.status)],
      ["Crowd's label", clip.crowd.label === null ? "no answers yet" : `${shown(clip.crowd.label)} (${pct(clip.crowd.confidence)})`],
      ["Regular answers", String(clip.n_answers)],
    ];
    if (clip.seed_label !== null) facts.push(["Seed label", shown(clip.seed_label)]);
    if (clip.gold_label !== null) facts.push(["Known answer", shown(clip.gold_label)]);
    if (clip.expert) facts.push(["Your correction", `${shown(clip.expert.label)}, ${when(clip.expert.at)}`]);
    replace(detail,
      h("div", { class: "detail-head" },
        title,
        h("div", { class: "detail-nav" },
          h("button", { type: "button", class: "dash-button small", disabled: !prev, "aria-label": "Previous clip in the table", onclick: () => prev && openClip(prev.clip_id, true) }, "↑ Prev"),
          h("button", { type: "button", class: "dash-button small", disabled: !next, "aria-label": "Next clip in the table", onclick: () => next && openClip(next.clip_id, true) }, "↓ Next"),
          h("button", { type: "button", class: "dash-button small", "aria-label": "Close the clip", onclick: closeClip }, "Close"))),
      h("p", { class: "hint" }, `Clip ${clip.clip_id} · ${clip.duration.toFixed(2)} s · ${clip.sample_rate} Hz · keys: J next, K previous, Esc closes`),
      h("figure", { class: "clip-media" }, spectrogram, audio),
      labelLine,
      h("p", { class: "saved ok", role: "status" }),
      correctionForm(clip, (v, control) => save(clip, v, control), state.filters.review ? () => discard(clip) : null),
      h("dl", { class: "figures" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h3", {}, "Soft label"),
      softBars(clip.soft, clip.classes),
      h("h3", {}, "Model"),
      h("p", { class: "prediction" }, predictionText(clip)),
      similarPanel(clip),
      h("h3", {}, "Answers"),
      answersTable(clip));
  }

  function onKey(ev) {
    if (!root.isConnected || ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const target = ev.target instanceof Element ? ev.target : document.body;
    const typing = target.closest("input, select, textarea, audio");
    if (ev.key === "Escape" && state.openId !== null && !target.closest("select")) {
      ev.preventDefault();
      closeClip();
      return;
    }
    if (typing || state.openId === null) return;
    const step = ev.key === "j" ? 1 : ev.key === "k" ? -1 : 0;
    if (!step) return;
    const other = neighbour(step);
    if (other) {
      ev.preventDefault();
      openClip(other.clip_id, true);
    }
  }
  document.addEventListener("keydown", onKey);

  await load();
  if (state.openId !== null) await openClip(state.openId, false);
  root.dataset.ready = "true";
  return () => {
    state.alive = false;
    document.removeEventListener("keydown", onKey);
  };
}
