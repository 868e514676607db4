// A draft project on its dashboard: what being a draft means, and the owner's "Open to
// annotators" action (PATCH /api/v1/projects/{id} {"open": true}; one way). A project made with
// the web form starts as a draft, so that its owner can upload audio, control questions and
// check the settings before anyone is handed a clip.

import { ApiError, api } from "./api.js";
import { announce, h } from "./dom.js";

/** The notice for `project` (as its owner GETs it), `clips` the clips it holds now.
 *  `onOpened(project)` runs once the server has opened it. */
export function draftNotice(project, clips, onOpened) {
  const box = h("section", { class: "draft-notice", id: "dash-draft", "aria-labelledby": "dash-draft-title" });
  if (project.open) {
    box.classList.add("is-open");
    box.append(h("p", { id: "dash-draft-title" }, h("span", { class: "badge open" }, "Open"), " Annotators can see this project and get its clips."));
    return box;
  }
  const who = project.invite_only ? "the annotators you invite (it is invite-only)" : "every registered annotator";
  const error = h("p", { class: "field-error", role: "alert" });
  const button = h("button", { type: "button", class: "dash-button primary", id: "dash-open" }, "Open to annotators");
  box.append(
    h("h2", { id: "dash-draft-title" }, h("span", { class: "badge draft" }, "Draft"), " Annotators cannot see this project yet"),
    h("p", {}, `Only you see it while it is a draft: add clips and control questions, and check the settings first. Opening it lists it for ${who} and starts handing out its clips. An open project cannot go back to draft (make it invite-only to keep new people out).`),
    clips ? null : h("p", { class: "note" }, "It has no clips yet: annotators would find nothing to do. Add audio below first."),
    h("div", { class: "actions" }, button),
    error,
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try {
      const opened = await api("PATCH", `/projects/${project.id}`, { open: true });
      const fresh = draftNotice(opened, clips, onOpened);
      box.replaceWith(fresh);
      fresh.setAttribute("tabindex", "-1");
      fresh.focus();
      announce(`Project ${opened.name} is open to annotators.`);
      if (onOpened) onOpened(opened);
    } catch (e) {
      error.textContent = `Could not open the project: ${e instanceof ApiError ? e.message : "the server could not be reached"}.`;
      button.disabled = false;
    }
  });
  return box;
}
