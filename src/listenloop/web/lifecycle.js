// The dashboard's lifecycle card: pause, resume or archive the project (POST /projects/{id}/
// pause|resume|archive), and delete it after typing its name (DELETE /projects/{id}
// {"confirm": NAME}); the server decides what each state allows and says why not.

import { ApiError, api } from "./api.js";
import { announce, h, replace } from "./dom.js";

const SAYS = {
  active: "Active: annotators get its clips.",
  paused: "Paused: annotators get no new clips; answers to clips they hold still count.",
  archived: "Archived: read-only. No clips are handed out, no answers or uploads are taken.",
};

/** The card's content for `project` (as its owner GETs it). */
export function lifecyclePanel(project) {
  const box = h("div", { class: "lifecycle", id: "dash-lifecycle-body" });
  const error = h("p", { class: "field-error", role: "alert" });
  let state = project.state || "active";

  const act = (action) => async () => {
    error.textContent = "";
    try {
      state = (await api("POST", `/projects/${project.id}/${action}`)).state;
      draw();
      announce(SAYS[state]);
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : "The server could not be reached; try again.";
    }
  };

  const nameInput = h("input", { type: "text", id: "dash-delete-name", autocomplete: "off", "aria-describedby": "dash-delete-hint" });
  const remove = h("button", { type: "submit", class: "dash-button danger", id: "dash-delete" }, "Delete the project");
  const deleteForm = h(
    "form",
    { class: "delete-form", "aria-labelledby": "dash-delete-title" },
    h("h3", { id: "dash-delete-title" }, "Delete"),
    h("p", { class: "hint", id: "dash-delete-hint" }, `Removes its clips, answers and audio for good (an audit record is kept). Type its name, ${project.name}, to confirm.`),
    h("div", { class: "field" }, h("label", { for: "dash-delete-name" }, "Project name"), nameInput),
    h("div", { class: "actions" }, remove),
  );
  deleteForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    if (nameInput.value !== project.name) {
      error.textContent = `Type the project's name exactly (${project.name}) to delete it.`;
      nameInput.focus();
      return;
    }
    remove.disabled = true;
    try {
      const gone = await api("DELETE", `/projects/${project.id}`, { confirm: nameInput.value });
      announce(`Project ${gone.name} is deleted: ${gone.clips} clips and ${gone.answers} answers.`);
      location.hash = "#/projects";
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : "The server could not be reached; try again.";
      remove.disabled = false;
    }
  });

  function draw() {
    const buttons = [];
    if (state === "active") buttons.push(["pause", "Pause"]);
    if (state !== "active") buttons.push(["resume", "Resume"]);
    if (state !== "archived") buttons.push(["archive", "Archive"]);
    replace(
      box,
      h("p", { class: "state", id: "dash-state", dataset: { state } }, SAYS[state]),
      h("div", { class: "actions" }, buttons.map(([action, text]) => [h("button", { type: "button", class: "dash-button", id: `dash-${action}`, onclick: act(action) }, text), " "])),
      deleteForm,
      error,
    );
  }
  draw();
  return box;
}
