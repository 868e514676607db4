// The account page (#/account): change the password, and sign out every other session.
// The server checks everything (the current password, length, common passwords); this page
// only sends the form and shows the answer.

import { ApiError, api } from "./api.js";
import { announce, h, replace } from "./dom.js";

function field(id, label, autocomplete, hint) {
  return [
    h("label", { for: id }, label),
    h("input", {
      id,
      name: id,
      type: "password",
      autocomplete,
      required: true,
      minlength: autocomplete === "new-password" ? "8" : null,
      "aria-describedby": hint ? `${id}-hint` : null,
    }),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
  ];
}

function explain(error) {
  if (error instanceof ApiError) return error.message;
  return "The server could not be reached. Check your connection and try again.";
}

function others(n) {
  if (n === 0) return "No other session was signed in.";
  return `${n} other session${n === 1 ? "" : "s"} signed out.`;
}

/** Draw the account page into `view` for `user`; `onUnauthorized` when the session has ended. */
export function renderAccount(view, user, onUnauthorized) {
  const error = h("p", { class: "form-error", id: "password-error", role: "alert" });
  const done = h("p", { class: "form-note", id: "password-done", role: "status" });
  const form = h(
    "form",
    { id: "password-form", class: "card", "aria-labelledby": "password-title", novalidate: true },
    h("h2", { id: "password-title" }, "Change your password"),
    field("current-password", "Current password", "current-password"),
    field("new-password", "New password", "new-password", "At least 8 characters, and not a common password. Your other sessions are signed out."),
    error,
    done,
    h("button", { type: "submit", class: "primary" }, "Change password"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    done.textContent = "";
    const body = {
      current_password: form.querySelector("#current-password").value,
      new_password: form.querySelector("#new-password").value,
    };
    try {
      const out = await api("POST", "/users/me/password", body);
      form.reset();
      done.textContent = `Password changed. ${others(out.ended)}`;
      announce(done.textContent);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return onUnauthorized();
      error.textContent = explain(err);
    }
  });

  const endNote = h("p", { class: "form-note", id: "sessions-done", role: "status" });
  const endButton = h("button", { type: "button", id: "end-sessions" }, "Sign out everywhere else");
  endButton.addEventListener("click", async () => {
    endNote.textContent = "";
    try {
      const out = await api("POST", "/users/me/sessions/end-others");
      endNote.textContent = others(out.ended);
      announce(endNote.textContent);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return onUnauthorized();
      endNote.textContent = explain(err);
    }
  });
  const sessions = h(
    "section",
    { class: "card", "aria-labelledby": "sessions-title" },
    h("h2", { id: "sessions-title" }, "Other sessions"),
    h("p", {}, "Signed in on another device or browser you no longer use? End every session but this one."),
    endButton,
    endNote,
  );

  replace(
    view,
    h(
      "section",
      { class: "narrow", "aria-labelledby": "account-title" },
      h("h1", { id: "account-title" }, "Your account"),
      h("p", { class: "muted" }, `Signed in as ${user.username}.`),
      form,
      sessions,
    ),
  );
}
