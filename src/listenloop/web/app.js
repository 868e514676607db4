// The annotator's single-page app: sign-up and sign-in, the project list, the labelling page,
// progress and leaderboards. Routes live after the # (#/projects, #/projects/3/label, ...);
// the owner's dashboard routes are drawn by ./dashboard.js and the clip browser by ./clips.js,
// each loaded only when needed.

import { renderAccount } from "./account.js";
import { ApiError, api, login } from "./api.js";
import { announce, h, progressBar, replace } from "./dom.js";
import { renderOverall } from "./gamify.js";
import { renderLabel } from "./label.js";

const state = { user: null, cleanup: null, afterSignIn: null, seq: 0 };
const view = document.getElementById("view");
const landing = document.getElementById("landing");

function isOwner(user) {
  return user && (user.role === "owner" || user.role === "admin");
}

function setUser(user) {
  state.user = user;
  const nav = document.getElementById("nav");
  nav.hidden = !user;
  document.getElementById("who").textContent = user ? `Signed in as ${user.username}` : "";
}

function friendly(error) {
  if (error instanceof ApiError) return error.message;
  return "The server could not be reached. Check your connection and try again.";
}

/** Show a full-page message (errors, missing modules) with a way back. */
function message(title, text) {
  replace(
    view,
    h(
      "section",
      { class: "card narrow", "aria-labelledby": "message-title" },
      h("h1", { id: "message-title" }, title),
      h("p", {}, text),
      h("p", {}, h("a", { href: "#/projects" }, "Back to the projects")),
    ),
  );
}

function focusHeading() {
  const heading = view.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

// ---- signed out: the start page with its two forms ----

function showLanding(note) {
  replace(view, landing);
  const noteEl = document.getElementById("signin-note");
  noteEl.hidden = !note;
  noteEl.textContent = note || "";
}

function wireForms() {
  const signin = document.getElementById("signin-form");
  const signup = document.getElementById("signup-form");
  signin.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("signin-error");
    const username = signin.elements.username.value.trim();
    const password = signin.elements.password.value;
    error.textContent = "";
    if (!username || !password) {
      error.textContent = "Enter your username and password.";
      return;
    }
    await signIn(username, password, error, signin);
  });
  signup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("signup-error");
    const username = signup.elements.username.value.trim();
    const password = signup.elements.password.value;
    error.textContent = "";
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(username)) {
      error.textContent = "Username: 1 to 64 letters, digits or . _ @ -";
      signup.elements.username.focus();
      return;
    }
    if (password.length < 8) {
      error.textContent = "Password: at least 8 characters.";
      signup.elements.password.focus();
      return;
    }
    const button = signup.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/users", { username, password });
    } catch (e) {
      button.disabled = false;
      error.textContent = e instanceof ApiError && e.status === 409 ? "That username is taken; try another." : friendly(e);
      return;
    }
    button.disabled = false;
    announce(`Welcome, ${username}! Your account is ready.`);
    await signIn(username, password, error, signup);
  });
  document.getElementById("signout").addEventListener("click", signOut);
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
}

async function signIn(username, password, errorEl, form) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await login(username, password);
    setUser(await api("GET", "/users/me"));
  } catch (e) {
    errorEl.textContent = e instanceof ApiError && e.status === 401 ? "Wrong username or password." : friendly(e);
    return;
  } finally {
    button.disabled = false;
  }
  form.reset();
  announce(`Signed in as ${username}.`);
  const target = state.afterSignIn || "#/projects";
  state.afterSignIn = null;
  if (location.hash === target) route();
  else location.hash = target;
}

async function signOut() {
  try {
    await api("POST", "/logout");
  } catch {
    // signed out already: nothing to undo
  }
  setUser(null);
  announce("Signed out.");
  if (location.hash === "#/" || location.hash === "") route();
  else location.hash = "#/";
}

// ---- signed in: projects ----

async function showProjects() {
  const heading = h("h1", {}, "Projects");
  const list = h("ul", { class: "project-list", "aria-busy": "true" });
  const tools = isOwner(state.user)
    ? h("p", { class: "toolbar" }, h("a", { class: "button primary", href: "#/new" }, "New project"))
    : null;
  replace(
    view,
    h(
      "section",
      { class: "projects", "aria-labelledby": "projects-title" },
      h("div", { class: "section-head" }, heading, tools),
      h("p", { class: "lead" }, "Pick a project and start listening. Every answer earns points."),
      list,
    ),
  );
  heading.id = "projects-title";
  focusHeading();
  let projects;
  try {
    projects = await api("GET", "/projects");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return requireSignIn();
    replace(list, h("li", { class: "card" }, friendly(e)));
    return;
  }
  list.removeAttribute("aria-busy");
  if (!projects.length) {
    replace(list, h("li", { class: "card" }, "There are no projects open to you yet. Check back soon."));
    return;
  }
  replace(list, projects.map((p) => projectCard(p)));
}

function describeTask(p) {
  if (p.task_type === "continuous" && p.range) return `Rate from ${p.range[0]} to ${p.range[1]}`;
  const n = (p.classes || []).length;
  if (p.task_type === "multilabel") return `Tag what you hear (${n} tags)`;
  if (p.task_type === "events") return `Mark the sounds you hear in each segment (${n} classes)`;
  if (p.task_type === "binary") return `Choose one of ${(p.classes || []).join(" or ")}`;
  return `Choose one of ${n} classes`;
}

function projectCard(p) {
  const owned = "answers_used" in p;
  const titleId = `project-${p.id}-title`;
  const progress = h("div", { class: "project-progress" });
  const card = h(
    "li",
    { class: "card project" },
    h("h2", { id: titleId }, p.name),
    p.open === false ? h("p", { class: "draft-label" }, h("strong", {}, "Draft"), ": only you see it; open it to annotators from its dashboard.") : null,
    p.state && p.state !== "active" ? h("p", { class: "draft-label" }, h("strong", {}, p.state === "paused" ? "Paused" : "Archived"), p.state === "paused" ? ": no new clips until its owner resumes it." : ": read-only, it takes no more answers.") : null,
    h("p", { class: "muted" }, describeTask(p)),
    progress,
    h(
      "p",
      { class: "actions" },
      h("a", { class: "button primary", href: `#/projects/${p.id}/label`, "aria-describedby": titleId }, "Start labelling"),
      owned ? h("a", { class: "button", href: `#/projects/${p.id}/dashboard`, "aria-describedby": titleId }, "Dashboard") : null,
      p.reviewer ? h("a", { class: "button", href: `#/projects/${p.id}/clips?review=all`, "aria-describedby": titleId }, "Review clips") : null,
    ),
  );
  api("GET", `/projects/${p.id}/status`)
    .then((s) => {
      const detail = `${s.clips_by_status.done + s.clips_by_status.low_agreement} of ${s.clips} clips finished`;
      replace(progress, progressBar(`project-${p.id}-progress`, "Progress", s.progress, detail));
    })
    .catch(() => replace(progress));
  return card;
}

// ---- owner routes: drawn by dashboard.js ----

async function showDashboard(kind, projectId) {
  const what = kind === "new" ? "the new-project form" : "the dashboard";
  replace(view, h("p", { class: "muted", role: "status", "aria-busy": "true" }, `Loading ${what}…`));
  let module;
  try {
    module = await import("./dashboard.js");
  } catch {
    message("Dashboard unavailable", "The owner's dashboard could not be loaded. Reload the page, or try again later.");
    return;
  }
  const root = h("div", { class: "dashboard-root" });
  replace(view, root);
  try {
    if (kind === "new") await module.renderNewProject(root);
    else await module.renderDashboard(root, projectId);
  } catch (e) {
    message("Dashboard unavailable", friendly(e));
  }
}

// ---- the owner's clip browser: drawn by clips.js ----

async function showClips(projectId, query) {
  replace(view, h("p", { class: "muted", role: "status" }, "Loading the clips…"));
  const seq = state.seq;
  let module;
  try {
    module = await import("./clips.js");
  } catch {
    message("Clips unavailable", "The clip browser could not be loaded. Reload the page, or try again later.");
    return;
  }
  const root = h("div", { class: "dashboard-root" });
  replace(view, root);
  try {
    const cleanup = await module.renderClips(root, projectId, query);
    if (seq === state.seq) state.cleanup = cleanup;
    else cleanup();
  } catch (e) {
    if (seq === state.seq) handle(e);
  }
}

// ---- routing ----

function runCleanup() {
  if (state.cleanup) {
    const cleanup = state.cleanup;
    state.cleanup = null;
    cleanup();
  }
}

function requireSignIn() {
  runCleanup();
  setUser(null);
  state.afterSignIn = location.hash && location.hash !== "#/" ? location.hash : null;
  showLanding(state.afterSignIn ? "Please sign in to continue." : "");
}

async function route() {
  let hash = location.hash || "#/";
  if (!hash.startsWith("#/")) {
    if (state.booted) return; // an in-page anchor
    hash = "#/";
  }
  state.seq += 1;
  runCleanup();
  if (!state.user) {
    if (hash === "#/" || hash === "#/signin" || hash === "#/signup") {
      showLanding("");
      if (hash === "#/signup") document.getElementById("signup-username").focus();
      if (hash === "#/signin") document.getElementById("signin-username").focus();
    } else {
      requireSignIn();
    }
    return;
  }
  let m;
  if (hash === "#/" || hash === "#/projects" || hash === "#/signin" || hash === "#/signup") return showProjects();
  if (hash === "#/leaderboard") return renderOverall(view).then(focusHeading, (e) => handle(e));
  if (hash === "#/account") {
    renderAccount(view, state.user, requireSignIn);
    return focusHeading();
  }
  if (hash === "#/new") return showDashboard("new");
  if ((m = hash.match(/^#\/projects\/(\d+)\/dashboard$/))) return showDashboard("dashboard", Number(m[1]));
  if ((m = hash.match(/^#\/projects\/(\d+)\/clips(?:\?(.*))?$/))) return showClips(Number(m[1]), m[2]);
  if ((m = hash.match(/^#\/projects\/(\d+)\/label$/))) {
    const seq = state.seq;
    try {
      const cleanup = await renderLabel(view, Number(m[1]), { user: state.user, onUnauthorized: requireSignIn });
      if (seq === state.seq) state.cleanup = cleanup;
      else cleanup(); // the route changed while the page was loading
    } catch (e) {
      if (seq === state.seq) handle(e);
    }
    return;
  }
  message("Page not found", "There is nothing at this address.");
}

function handle(e) {
  if (e instanceof ApiError && e.status === 401) return requireSignIn();
  if (e instanceof ApiError && (e.status === 403 || e.status === 404)) return message("Not available", e.message);
  message("Something went wrong", friendly(e));
}

async function boot() {
  wireForms();
  try {
    setUser((await api("GET", "/session")).user);
  } catch {
    setUser(null);
  }
  window.addEventListener("hashchange", route);
  await route();
  state.booted = true;
  document.documentElement.dataset.app = "ready";
}

boot();
