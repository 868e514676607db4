// Adding audio and control questions to a project, at any time: the dashboard's "Add clips"
// card (dashboard.js) draws uploadForms(projectId). Audio comes as a zip (optionally with a CSV
// of seed labels) or, for pools too big to upload, as a manifest of paths on the server;
// control questions as a CSV of file,label (optionally with a zip of their audio). Uploads show
// their progress; what the server refused is listed file by file with its reason.

import { ApiError, upload } from "./api.js";
import { announce, h } from "./dom.js";

/** A table of refused files (`[{file, reason}]`), or null when none was refused. */
export function rejectionTable(caption, rejected) {
  if (!rejected || !rejected.length) return null;
  const rows = rejected.map((r) => h("tr", {}, h("th", { scope: "row" }, r.file), h("td", {}, r.reason)));
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption },
    h("table", { class: "data rejected" }, h("caption", {}, caption), h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "File"), h("th", { scope: "col" }, "Reason"))), h("tbody", {}, rows)),
  );
}

function fileField(id, label, accept, hint) {
  const el = h("input", { id, type: "file", accept, "aria-describedby": `${id}-hint` });
  return [el, h("div", { class: "field" }, h("label", { for: id }, label), el, h("p", { class: "hint", id: `${id}-hint` }, hint))];
}

/** A progress bar with its label and text; `set(fraction)` moves it, `say(text)` replaces the text
 * (`failed` colours the bar as an error, so a refused upload's full bar never reads as success). */
function progress(id, label) {
  const bar = h("progress", { id, max: "1", value: "0" });
  const text = h("span", { class: "progress-text", "aria-live": "polite" }, "");
  const el = h("div", { class: "progress" }, h("label", { for: id }, label), bar, text);
  return {
    el,
    set(f) {
      bar.value = f;
      text.textContent = f >= 1 ? "Uploaded; checking the files…" : `${Math.round(f * 100)}%`;
    },
    say(message, value, failed = false) {
      if (value !== undefined) bar.value = value;
      el.classList.toggle("failed", failed);
      text.textContent = message;
    },
  };
}

/** Send `data` to `path` with progress on `bar`; show what came back (or why it failed) in `result`. */
async function send(path, data, { button, bar, result, caption }, report) {
  button.disabled = true;
  result.replaceChildren();
  bar.say("", 0);
  try {
    const out = await upload(path, data, (f) => bar.set(f));
    bar.say("Done", 1);
    result.replaceChildren(...report(out));
    return out;
  } catch (e) {
    bar.say("Failed", undefined, true);
    const rejected = e instanceof ApiError && e.body && Array.isArray(e.body.rejected) ? e.body.rejected : [];
    const message = e instanceof ApiError ? e.message : "The server could not be reached; try again.";
    result.replaceChildren(h("p", { class: "field-error" }, message), rejectionTable(caption, rejected) || "");
    return null;
  } finally {
    button.disabled = false;
  }
}

function clipsForm(pid, onUploaded) {
  const [archive, archiveField] = fileField("up-archive", "Zip of audio files", ".zip,application/zip", "wav, flac, ogg or mp3. Files that are not audio, damaged, too large or already in the project are refused one by one, with the reason.");
  const [labels, labelsField] = fileField("up-labels", "Seed labels (optional CSV: file,label)", ".csv,text/csv", "Clips with a label here join the training set at once.");
  const [manifest, manifestField] = fileField("up-manifest", "Manifest (CSV: file[,label]) instead of a zip", ".csv,text/csv", "Paths relative to the folder the server was started with (listenloop serve --import-root DIR); a label makes the clip a seed.");
  const bar = progress("up-progress", "Upload progress");
  const result = h("div", { class: "upload-result", role: "status" });
  const button = h("button", { type: "submit", class: "dash-button" }, "Upload audio");
  const form = h(
    "form",
    { class: "upload", novalidate: true, "aria-labelledby": "up-clips-title" },
    h("h3", { id: "up-clips-title" }, "Audio clips"),
    archiveField,
    labelsField,
    h("details", { class: "upload-more" }, h("summary", {}, "Pool too big to upload? Use a manifest of files on the server"), manifestField),
    bar.el,
    h("div", { class: "actions" }, button),
    result,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!archive.files.length === !manifest.files.length) {
      const why = archive.files.length ? "Choose a zip or a manifest, not both." : "Choose a zip file first.";
      result.replaceChildren(h("p", { class: "field-error" }, why));
      archive.focus();
      return;
    }
    const data = new FormData();
    if (archive.files.length) data.append("archive", archive.files[0]);
    else data.append("manifest", manifest.files[0]);
    if (labels.files.length) data.append("labels", labels.files[0]);
    const out = await send(`/projects/${pid}/clips`, data, { button, bar, result, caption: "Files refused" }, (o) => [
      h("p", { class: "ok" }, `${o.added} clip${o.added === 1 ? "" : "s"} added${o.rejected.length ? `, ${o.rejected.length} refused` : ""}.`),
      rejectionTable("Files refused", o.rejected) || "",
    ]);
    if (out) {
      announce(`${out.added} clips added.`);
      form.reset();
      if (onUploaded) onUploaded(out);
    }
  });
  return form;
}

function goldForm(pid, onUploaded) {
  const [file, fileBox] = fileField("up-gold", "Known answers (CSV: file,label)", ".csv,text/csv", "Clips whose answer you know; annotators get them now and then to measure their trust.");
  const [archive, archiveField] = fileField("up-gold-archive", "Their audio (optional zip)", ".zip,application/zip", "Only for control clips not uploaded yet: they are added with the CSV.");
  const bar = progress("up-gold-progress", "Upload progress");
  const result = h("div", { class: "upload-result", role: "status" });
  const button = h("button", { type: "submit", class: "dash-button" }, "Upload control questions");
  const form = h(
    "form",
    { class: "upload", novalidate: true, "aria-labelledby": "up-gold-title" },
    h("h3", { id: "up-gold-title" }, "Control questions"),
    fileBox,
    archiveField,
    bar.el,
    h("div", { class: "actions" }, button),
    result,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      result.replaceChildren(h("p", { class: "field-error" }, "Choose a CSV file first."));
      file.focus();
      return;
    }
    const data = new FormData();
    data.append("file", file.files[0]);
    if (archive.files.length) data.append("archive", archive.files[0]);
    const out = await send(`/projects/${pid}/gold`, data, { button, bar, result, caption: "Rows refused" }, (o) => [
      h("p", { class: "ok" }, `${o.marked} control question${o.marked === 1 ? "" : "s"} marked.`),
      rejectionTable("Rows refused", o.rejected) || "",
    ]);
    if (out) {
      announce(`${out.marked} control questions marked.`);
      form.reset();
      if (onUploaded) onUploaded(out);
    }
  });
  return form;
}

/** The audio and control-question forms of project `pid`; `onUploaded(result)` after each success. */
export function uploadForms(pid, onUploaded) {
  return [
    h("p", { class: "lead" }, "Add audio whenever you like: new clips join the queue, and the model ranks them at its next round. Control questions can be marked any time after their clips are uploaded."),
    clipsForm(pid, onUploaded),
    goldForm(pid, onUploaded),
  ];
}
