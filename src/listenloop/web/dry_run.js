// The dry-run card of the owner's dashboard: a button that starts a simulation on the project's
// labelled clips (POST /api/v1/projects/{id}/dry-run), its progress while the learning service
// runs it, then the server's verdict and, per strategy, the labels it needs to reach the target
// score with an 80 % interval (GET). Every figure and word of the verdict comes from the server.

import { api, ApiError } from "./api.js";
import { announce, h, progressBar, replace } from "./dom.js";

function labelsText(x) {
  return x === null || x === undefined ? "not reached" : String(Math.round(x));
}

function interval(pair) {
  const [lo, hi] = pair || [null, null];
  return `${labelsText(lo)} to ${labelsText(hi)}`;
}

function shareText(share) {
  if (share === null || share === undefined) return "–";
  const d = Math.round((1 - share) * 100);
  return d >= 0 ? `${d} % fewer` : `${-d} % more`;
}

const COMPARED = { baseline: "baseline", fewer: "fewer labels", more: "more labels", same: "about the same" };

function verdictTable(v) {
  const metric = v.metric === "uar" ? "UAR" : v.metric.toUpperCase();
  const table = h("table", { class: "data" }, h("caption", {}, `Labels to reach ${metric} ${Number(v.target).toFixed(2)}, per strategy`));
  table.append(h("thead", {}, h("tr", {}, ...["Strategy", "Labels needed", "80 % interval", "Against random", "Verdict"].map((t) => h("th", { scope: "col" }, t)))));
  const body = h("tbody", {});
  const names = Object.keys(v.strategies).sort((a, b) => (v.strategies[a].labels_to_target ?? Infinity) - (v.strategies[b].labels_to_target ?? Infinity));
  for (const name of names) {
    const s = v.strategies[name];
    const row = h("tr", name === v.recommended ? { class: "recommended" } : {},
      h("th", { scope: "row" }, name.replaceAll("_", " ") + (name === v.recommended ? " (recommended)" : "")),
      h("td", {}, labelsText(s.labels_to_target)),
      h("td", {}, interval(s.labels_ci80)),
      h("td", {}, name === "random" ? "–" : shareText(s.share_of_random)),
      h("td", {}, COMPARED[s.compared_with_random] || s.compared_with_random));
    body.append(row);
  }
  table.append(body);
  return h("div", { class: "table-scroll" }, table);
}

/** The card's content and `refresh()` (the dashboard's poll calls it). */
export function dryRunPanel(pid) {
  const body = h("div", { class: "dry-run-body", "aria-live": "polite" });
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const button = h("button", { type: "button", class: "dash-button primary", id: "dry-run-start" }, "Start a dry run");
  let last = null;
  let shown = null;

  button.addEventListener("click", async () => {
    button.disabled = true;
    error.hidden = true;
    try {
      last = await api("POST", `/projects/${pid}/dry-run`);
      announce("The dry run is queued.");
      draw();
    } catch (e) {
      error.textContent = `The dry run could not start: ${e.message}`;
      error.hidden = false;
      button.disabled = false;
    }
  });

  async function refresh() {
    try {
      last = await api("GET", `/projects/${pid}/dry-run`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      last = null;
    }
    draw();
  }

  function draw() {
    const sig = JSON.stringify(last);
    if (sig === shown) return;
    shown = sig;
    const busy = last && (last.status === "queued" || last.status === "running");
    button.disabled = Boolean(busy);
    button.textContent = last && !busy ? "Run the dry run again" : "Start a dry run";
    if (!last) {
      replace(body, h("p", { class: "empty" }, "No dry run yet."));
      return;
    }
    if (last.status === "queued") {
      replace(body, h("p", {}, `Queued: ${last.labels} labelled clips wait for the learning service.`));
    } else if (last.status === "running") {
      const p = last.progress;
      replace(body, progressBar("dry-run-progress", "Simulating", p.share, p.total ? `${p.done} of ${p.total} runs` : "extracting features"));
    } else if (last.status === "failed") {
      replace(body, h("p", { class: "field-error" }, `The dry run failed: ${last.error}`));
    } else {
      const v = last.result.verdict;
      replace(body,
        h("p", { class: "verdict", id: "dry-run-verdict" }, v.text),
        verdictTable(v),
        h("p", { class: "hint" }, `Simulated on ${last.labels} labelled clips in ${Math.round(last.seconds)} s. The same verdict from the command line: `, h("code", {}, last.result.command)));
    }
  }

  const element = h("div", { class: "dry-run" },
    h("p", {}, "Before paying for answers: simulate each query strategy on the clips you uploaded with labels, and see which one reaches a good model with the fewest labels on your data."),
    button, error, body);
  return { element, refresh };
}
