// The labelling page (#/projects/{id}/label): one clip at a time with its spectrogram and a
// moving playhead, answer controls for the project's task type, keyboard shortcuts, instant
// points feedback, and the next clip fetched the moment an answer is stored.
//
// `next` leases one task per annotator and returns the same open task until it is answered,
// so the next task can only be asked for after the answer: the page then fetches its audio
// into a blob URL (and its spectrogram beside it) while the "+10" animation plays, and the
// clip is playable as soon as the audio is in. `data-ready-ms` on #label-page is the time from
// the answer's key press (or click) to the next clip's `canplay`.
//
// Undo (Backspace or the Undo button) takes the last answer back (DELETE /tasks/{id}/answer):
// the server decides whether it still may (its lease, no later answer resting on it) and says
// why not; after an undo `next` serves that task again, so the page shows that clip again.
//
// The project's guidelines and examples (./guide.js) open before the first task when this
// version of them was not shown on this device yet (the first lease waits for the dialog to
// close), and on demand with the Guidelines button or G. A paused or archived project answers
// `next` with 409 and its reason, which the page shows while it polls.

import { ApiError, api } from "./api.js";
import { announce, h, percent, progressBar, replace } from "./dom.js";
import { badgeList, boardTable, fetchProgress, levelBar } from "./gamify.js";
import { guideSeen, hasGuide, loadGuide, showGuide } from "./guide.js";

const CANT_TELL = "can't tell";
const POLL_MS = 4000;
const STREAK_GAP_MS = 120000; // a pause longer than this ends the in-session answer streak
const SPEC_LEFT = 0.08; // the plot area inside the server's spectrogram picture (engine/live/media.py)
const SPEC_WIDTH = 0.9;
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
const UNDO_HELP = " Backspace takes back your last answer.";

/** The key of each choice: the digit itself when every choice is a distinct single digit (a
 *  spoken-digits project: press what you hear), else 1..9 then 0 in order (null past ten). */
function keysFor(choices) {
  const digits = choices.every((c) => /^[0-9]$/.test(c)) && new Set(choices).size === choices.length;
  return choices.map((c, i) => (digits ? c : i < KEYS.length ? KEYS[i] : null));
}

async function blobUrl(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, `could not load ${url}`, null);
  return URL.createObjectURL(await response.blob());
}

/** Fetch a task's audio into a blob URL; its spectrogram follows once the audio is in (a first
 *  spectrogram is drawn on the server, which would otherwise slow the audio down). */
function prepare(task) {
  const audio = blobUrl(task.audio_url)
    .then((url) => ({ url, blob: true }))
    .catch(() => ({ url: task.audio_url, blob: false }));
  const image = audio.then(() => blobUrl(task.spectrogram_url)).catch(() => null);
  return audio.then((a) => ({ task, audio: a.url, image, blob: a.blob }));
}

/** Draw the labelling page into `root`; resolves to a cleanup function for when the route changes. */
export async function renderLabel(root, projectId, ctx) {
  const [project, guide] = await Promise.all([api("GET", `/projects/${projectId}`), loadGuide(projectId)]);
  const s = {
    current: null,
    ahead: null, // {task_id, clip: Promise} the following task, leased and loading while this one plays
    busy: true,
    destroyed: false,
    poll: null,
    frame: null,
    pending: null,
    question: null,
    controls: null,
    answered: 0,
    streak: 0,
    bestStreak: 0,
    lastAnswer: 0,
    level: null,
    perLevel: null,
    badges: null,
    timings: [],
    marks: {},
    undoable: null, // {task_id} of the last answer, while the page may offer to take it back
    undoing: false,
    guideOpen: false,
  };

  // ---- the page ----
  const title = h("h1", { id: "label-title", tabindex: "-1" }, project.name);
  const statusLine = h("p", { class: "clip-status", id: "clip-status" }, "Loading the first clip…");
  const img = h("img", { class: "spectrogram", alt: "Spectrogram of the clip: time runs left to right, pitch bottom to top", hidden: true });
  const playhead = h("div", { class: "playhead", "aria-hidden": "true" });
  const audio = h("audio", { preload: "auto" });
  const playButton = h("button", { type: "button", class: "play", "aria-keyshortcuts": "R Space" }, "Replay (R)");
  const timeText = h("span", { class: "time", "aria-hidden": "true" }, "0.0 s");
  const feedback = h("div", { class: "feedback", "aria-hidden": "true" });
  const questionText = h("h2", { id: "question-text", class: "question" }, "What do you hear?");
  const controlsBox = h("div", { class: "controls" });
  const cantButton = h(
    "button",
    { type: "button", class: "cant", "aria-keyshortcuts": "C ?", onclick: () => submit(CANT_TELL) },
    h("kbd", {}, "C"),
    " Can't tell",
  );
  const undoButton = h(
    "button",
    { type: "button", class: "undo", id: "undo", "aria-keyshortcuts": "Backspace", disabled: true, onclick: () => undo() },
    h("kbd", {}, "⌫"),
    " Undo",
  );
  const notice = h("p", { class: "notice", role: "alert" });
  const projectStats = h("div", { class: "project-stats" });
  const progressBox = h("div", { class: "project-progress" });
  const streakBox = h("p", { class: "streak" });
  const badgeBox = h("div", { class: "badge-box" });
  const boardBox = h("div", { class: "board-box" });
  const refreshBoard = h("button", { type: "button", class: "link-button", onclick: () => loadBoard() }, "Refresh the leaderboard");
  const guideButton = hasGuide(guide)
    ? h("button", { type: "button", class: "guide-open", id: "guide-open", "aria-keyshortcuts": "G", onclick: () => openGuide() }, h("kbd", {}, "G"), " Guidelines")
    : null;

  const form = h(
    "form",
    { class: "answer card", "aria-labelledby": "question-text", novalidate: true, onsubmit: (e) => e.preventDefault() },
    questionText,
    controlsBox,
    h("div", { class: "cant-row" }, cantButton, undoButton),
    notice,
    h(
      "p",
      { class: "keys-help", id: "keys-help" },
      "Keyboard: number keys answer (1–9, 0 for the tenth), C or ? can't tell, R or Space replays." +
        UNDO_HELP +
        (guideButton ? " G opens the guidelines." : ""),
    ),
  );
  const player = h(
    "section",
    { class: "player card", "aria-label": "The clip" },
    h("div", { class: "spectro" }, img, playhead, feedback),
    audio,
    h("div", { class: "player-row" }, playButton, timeText, statusLine),
  );
  const page = h(
    "div",
    { id: "label-page", class: "label-page", "data-state": "loading", "data-project": String(projectId) },
    h(
      "div",
      { class: "section-head" },
      title,
      h("p", { class: "head-links" }, guideButton, guideButton ? " " : null, h("a", { href: "#/projects" }, "All projects")),
    ),
    progressBox,
    h(
      "div",
      { class: "label-grid" },
      h("div", { class: "work" }, player, form),
      h(
        "aside",
        { class: "side", "aria-label": "Your points and the leaderboard" },
        h("section", { class: "card", "aria-labelledby": "you-title" }, h("h2", { id: "you-title" }, "You"), projectStats, streakBox, badgeBox),
        h(
          "section",
          { class: "card", "aria-labelledby": "board-title" },
          h("h2", { id: "board-title" }, "Leaderboard"),
          boardBox,
          refreshBoard,
        ),
      ),
    ),
  );
  replace(root, page);
  title.focus();

  // ---- state shown on the page ----
  function setState(name, text) {
    page.dataset.state = name;
    if (text !== undefined) statusLine.textContent = text;
    refreshUndo();
  }

  /** The Undo button works when there is an answer to take back and the page is not in the middle of a change. */
  function refreshUndo() {
    undoButton.disabled = !canUndo();
  }

  function canUndo() {
    return Boolean(s.undoable) && !s.undoing && (page.dataset.state === "ready" || page.dataset.state === "idle");
  }

  // Busy controls stay focusable (focus must not fall to the page while an answer is saved):
  // they are marked aria-disabled and `s.busy` makes them do nothing.
  function setDisabled(disabled) {
    for (const el of form.querySelectorAll("button:not(.undo), input")) {
      if (disabled) el.setAttribute("aria-disabled", "true");
      else el.removeAttribute("aria-disabled");
    }
    if (!s.current) playButton.setAttribute("aria-disabled", "true");
    else playButton.removeAttribute("aria-disabled");
  }

  function say(text) {
    notice.textContent = text || "";
  }

  // ---- controls for the task type ----
  function buildControls(question) {
    s.question = question;
    questionText.textContent = question.text;
    const type = question.type;
    if (type === "continuous") {
      const [lo, hi] = question.range;
      const step = (hi - lo) / 100 || 1;
      const mid = lo + Math.round((hi - lo) / 2 / step) * step;
      const slider = h("input", {
        type: "range",
        id: "rating",
        min: String(lo),
        max: String(hi),
        step: String(step),
        value: String(mid),
        "aria-describedby": "keys-help",
      });
      const output = h("output", { for: "rating", class: "rating-value" }, String(mid));
      slider.addEventListener("input", () => {
        output.textContent = slider.value;
      });
      const send = h("button", { type: "button", class: "primary", "aria-keyshortcuts": "Enter", onclick: () => submit(Number(slider.value)) }, "Submit (Enter)");
      replace(
        controlsBox,
        h("div", { class: "rating" }, h("label", { for: "rating" }, `Your rating, ${lo} to ${hi}`), slider, output),
        h("div", { class: "submit-row" }, send),
      );
      s.controls = { type, slider, output, mid, send };
      form.querySelector(".keys-help").textContent =
        "Keyboard: arrow keys move the slider, Enter submits, C or ? can't tell, R or Space replays." + UNDO_HELP;
      return;
    }
    const choices = (question.choices || []).filter((c) => c !== CANT_TELL);
    const keys = keysFor(choices);
    if (type === "multilabel") {
      const toggles = choices.map((choice, i) =>
        h(
          "button",
          { type: "button", class: "choice toggle", "aria-pressed": "false", "aria-keyshortcuts": keys[i], "data-value": choice, "data-key": keys[i], onclick: (e) => toggle(e.currentTarget) },
          keys[i] ? h("kbd", {}, keys[i]) : null,
          " ",
          choice,
        ),
      );
      const send = h("button", { type: "button", class: "primary", "aria-keyshortcuts": "Enter", onclick: () => submitTags() }, "Submit (Enter)");
      replace(controlsBox, h("div", { class: "choices", role: "group", "aria-label": "Tags" }, toggles), h("div", { class: "submit-row" }, send));
      s.controls = { type, toggles, send };
      form.querySelector(".keys-help").textContent =
        "Keyboard: number keys toggle tags, Enter submits (no tag: nothing present), C or ? can't tell, R replays." + UNDO_HELP;
      return;
    }
    const buttons = choices.map((choice, i) =>
      h(
        "button",
        { type: "button", class: "choice", "aria-keyshortcuts": keys[i], "data-value": choice, "data-key": keys[i], onclick: () => submit(choice) },
        keys[i] ? h("kbd", {}, keys[i]) : null,
        " ",
        choice,
      ),
    );
    replace(controlsBox, h("div", { class: "choices", role: "group", "aria-label": "Answers" }, buttons));
    s.controls = { type, buttons };
    if (keys.every((k, i) => k === choices[i])) {
      form.querySelector(".keys-help").textContent =
        "Keyboard: press the digit you hear, C or ? can't tell, R or Space replays." + UNDO_HELP;
    }
  }

  function resetControls() {
    const c = s.controls;
    if (!c) return;
    if (c.type === "continuous") {
      c.slider.value = String(c.mid);
      c.output.textContent = String(c.mid);
    } else if (c.type === "multilabel") {
      for (const t of c.toggles) t.setAttribute("aria-pressed", "false");
    }
  }

  function toggle(button) {
    if (s.busy) return;
    button.setAttribute("aria-pressed", button.getAttribute("aria-pressed") === "true" ? "false" : "true");
  }

  function submitTags() {
    const tags = s.controls.toggles.filter((t) => t.getAttribute("aria-pressed") === "true").map((t) => t.dataset.value);
    submit(tags);
  }

  // ---- the player ----
  function drawPlayhead() {
    const d = audio.duration;
    const f = d && Number.isFinite(d) ? Math.min(audio.currentTime / d, 1) : 0;
    playhead.style.left = `${(SPEC_LEFT + SPEC_WIDTH * f) * 100}%`;
    timeText.textContent = `${audio.currentTime.toFixed(1)} s`;
    s.frame = audio.paused ? null : requestAnimationFrame(drawPlayhead);
  }

  function play() {
    const attempt = audio.play();
    if (attempt) attempt.catch(() => setState(page.dataset.state, "Press R or Replay to listen."));
  }

  function replay() {
    if (!s.current) return;
    audio.currentTime = 0;
    play();
  }

  playButton.addEventListener("click", replay);
  audio.addEventListener("play", () => {
    if (!s.frame) s.frame = requestAnimationFrame(drawPlayhead);
  });
  audio.addEventListener("pause", drawPlayhead);
  audio.addEventListener("ended", drawPlayhead);
  audio.addEventListener("canplay", () => ready(false));
  audio.addEventListener("error", () => ready(true));

  function ready(failed) {
    const pending = s.pending;
    if (!pending || s.current !== pending.clip) return;
    s.pending = null;
    s.busy = false;
    setDisabled(false);
    const task = pending.clip.task;
    if (pending.t0 !== null) {
      const now = performance.now();
      const ms = now - pending.t0;
      s.timings.push(ms);
      page.dataset.readyMs = ms.toFixed(1);
      // where the time went: answer stored, next task leased, audio fetched, audio decodable
      const m = s.marks;
      page.dataset.readyBreakdown = [m.answered, m.leased, m.fetched, now].map((t) => (t ? (t - pending.t0).toFixed(1) : "")).join(",");
    }
    page.dataset.readyTask = String(task.task_id);
    page.dataset.answered = String(s.answered);
    setState("ready", failed ? "This clip would not play; answer what you can, or say can't tell." : `Clip ${s.answered + 1}`);
    if (!failed) play();
    prefetch();
  }

  /** Lease and load the following task while this one plays (GET next?ahead=true). */
  async function prefetch() {
    if (s.ahead || s.destroyed) return;
    const claim = { task_id: null, clip: null };
    s.ahead = claim;
    try {
      const task = await api("GET", `/projects/${projectId}/next?ahead=true`);
      if (!task || s.destroyed || s.ahead !== claim || (s.current && task.task_id === s.current.task.task_id)) {
        if (s.ahead === claim) s.ahead = null;
        return;
      }
      claim.task_id = task.task_id;
      claim.clip = prepare(task);
    } catch {
      if (s.ahead === claim) s.ahead = null; // the answer path fetches it instead
    }
  }

  /** Forget the prefetched clip (its lease runs out on the server if it is never answered). */
  function dropAhead() {
    const claim = s.ahead;
    s.ahead = null;
    if (claim && claim.clip) {
      claim.clip.then((clip) => {
        if (clip.blob) URL.revokeObjectURL(clip.audio);
        clip.image.then((url) => url && URL.revokeObjectURL(url));
      });
    }
  }

  function show(clip, t0) {
    const previous = s.current;
    s.current = clip;
    if (!s.question || s.question.type !== clip.task.question.type || JSON.stringify(s.question) !== JSON.stringify(clip.task.question)) {
      buildControls(clip.task.question);
      setDisabled(true);
    }
    resetControls();
    s.pending = { clip, t0 };
    img.hidden = true;
    playhead.style.left = `${SPEC_LEFT * 100}%`;
    audio.src = clip.audio;
    clip.image.then((url) => {
      if (s.current === clip && url) {
        clip.imageUrl = url;
        img.src = url;
        img.hidden = false;
      } else if (url) URL.revokeObjectURL(url);
    });
    if (previous) {
      if (previous.blob) URL.revokeObjectURL(previous.audio);
      if (previous.imageUrl) URL.revokeObjectURL(previous.imageUrl);
    }
  }

  // ---- tasks ----
  async function loadNext(t0) {
    clearTimeout(s.poll);
    let task;
    try {
      task = await api("GET", `/projects/${projectId}/next`);
    } catch (e) {
      if (s.destroyed) return;
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthorized();
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) return blocked(e.message);
      if (e instanceof ApiError && e.status === 409) {
        // paused or archived by its owner: say so, and look again every few seconds
        setDisabled(true);
        setState("idle", e.message);
        s.poll = setTimeout(() => loadNext(null), POLL_MS);
        return;
      }
      setState("idle", "The server could not be reached; trying again in a few seconds.");
      s.poll = setTimeout(() => loadNext(null), POLL_MS);
      return;
    }
    if (s.destroyed) return;
    if (s.marks) s.marks.leased = performance.now();
    if (!task) return idle();
    if (s.current && s.current.task.task_id === task.task_id && !s.pending) {
      s.busy = false;
      setDisabled(false);
      setState("ready");
      return;
    }
    setState("loading", "Loading the next clip…");
    const clip = await prepare(task);
    if (s.marks) s.marks.fetched = performance.now();
    if (s.destroyed) {
      if (clip.blob) URL.revokeObjectURL(clip.audio);
      return;
    }
    show(clip, t0);
  }

  async function showPrefetched(claim, t0) {
    const clip = await claim.clip;
    if (s.destroyed) return;
    s.marks.leased = s.marks.fetched = performance.now();
    show(clip, t0);
  }

  async function idle() {
    s.busy = true;
    s.current = null;
    s.pending = null;
    audio.removeAttribute("src");
    img.hidden = true;
    setDisabled(true);
    let text = "Nothing to do right now. We will check again every few seconds: stay, or come back later.";
    try {
      const status = await loadStatus();
      if (status && status.budget_left === 0) text = "This project has all the answers its owner asked for. Thank you for listening!";
      else if (status && status.clips && status.progress >= 1) text = "Every clip of this project is labelled. Thank you for listening!";
    } catch {
      // keep the general text
    }
    if (s.destroyed) return;
    setState("idle", text);
    s.poll = setTimeout(() => loadNext(null), POLL_MS);
  }

  function blocked(text) {
    s.busy = true;
    setDisabled(true);
    setState("blocked", text);
    say(text);
  }

  async function submit(value) {
    if (s.busy || !s.current) return;
    const t0 = performance.now();
    s.marks = {};
    s.busy = true;
    setDisabled(true);
    audio.pause();
    say("");
    setState("sending", "Saving your answer…");
    const task = s.current.task;
    let result;
    try {
      result = await api("POST", `/tasks/${task.task_id}/answer`, { answer: value });
    } catch (e) {
      if (s.destroyed) return;
      if (e instanceof ApiError && e.status === 409) {
        say("That clip's time ran out, so here is a fresh one.");
        s.current = null;
        dropAhead();
        return loadNext(t0);
      }
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthorized();
      if (e instanceof ApiError && e.status === 403) return blocked(e.message);
      s.busy = false;
      setDisabled(false);
      setState("ready", "Your answer was not saved.");
      say(e instanceof ApiError ? e.message : "The server could not be reached; try again.");
      return;
    }
    if (s.destroyed) return;
    s.undoable = { task_id: task.task_id };
    s.marks = { answered: performance.now() };
    const claim = s.ahead;
    s.ahead = null;
    // first: the next clip (prefetched while this one played, else requested now) before any drawing
    const next = claim && claim.clip ? showPrefetched(claim, t0) : loadNext(t0);
    reward(result);
    await next;
    afterAnswer(result);
  }

  /** Take the last answer back; the server serves its task again, so that clip comes back. */
  async function undo() {
    if (!canUndo()) return;
    const last = s.undoable;
    const wasIdle = page.dataset.state === "idle";
    clearTimeout(s.poll);
    s.undoing = true;
    s.busy = true;
    setDisabled(true);
    audio.pause();
    say("");
    setState("undoing", "Taking your last answer back…");
    let result;
    try {
      result = await api("DELETE", `/tasks/${last.task_id}/answer`);
    } catch (e) {
      s.undoing = false;
      if (s.destroyed) return;
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthorized();
      if (e instanceof ApiError && (e.status === 409 || e.status === 403 || e.status === 404)) s.undoable = null;
      say(e instanceof ApiError ? e.message : "The server could not be reached; try again.");
      if (wasIdle || !s.current) {
        setState("idle", "Nothing to do right now. We will check again every few seconds.");
        s.poll = setTimeout(() => loadNext(null), POLL_MS);
      } else {
        s.busy = false;
        setDisabled(false);
        setState("ready", `Clip ${s.answered + 1}`);
      }
      return;
    }
    if (s.destroyed) return;
    s.undoing = false;
    s.undoable = null;
    s.answered = Math.max(0, s.answered - 1);
    s.streak = Math.max(0, s.streak - 1);
    s.level = result.level;
    drawProjectStats(result.total_points, result.level);
    drawStreak();
    say("");
    announce(`Answer taken back (${result.points} points less). Here is that clip again.`);
    loadBoard(); // the board showed the answer's points: it must not disagree with "You"
    dropAhead(); // its lease stays on the server: it comes back after this clip
    await loadNext(null);
  }

  // ---- rewards ----
  function reward(result) {
    const now = Date.now();
    s.streak = s.lastAnswer && now - s.lastAnswer > STREAK_GAP_MS ? 1 : s.streak + 1;
    s.bestStreak = Math.max(s.bestStreak, s.streak);
    s.lastAnswer = now;
    s.answered += 1;
    const floater = h("span", { class: "floater" }, `+${result.points}`);
    floater.addEventListener("animationend", () => floater.remove());
    feedback.append(floater);
    const levelUp = s.level !== null && result.level > s.level;
    s.level = result.level;
    drawProjectStats(result.total_points, result.level);
    drawStreak();
    let text = `+${result.points} points. ${result.total_points} points in this project.`;
    if (levelUp) {
      text += ` Level ${result.level}!`;
      const banner = h("span", { class: "floater level-up" }, `Level ${result.level}!`);
      banner.addEventListener("animationend", () => banner.remove());
      feedback.append(banner);
    }
    if ([5, 10, 25, 50, 100].includes(s.streak)) text += ` ${s.streak} in a row!`;
    announce(text);
  }

  function drawProjectStats(points, level) {
    const per = s.perLevel || 200;
    const levelAt = (level - 1) * per;
    replace(
      projectStats,
      h(
        "dl",
        { class: "stats" },
        h("div", {}, h("dt", {}, "Points here"), h("dd", { id: "project-points" }, String(points))),
        h("div", {}, h("dt", {}, "Level"), h("dd", { id: "project-level" }, String(level))),
        h("div", {}, h("dt", {}, "This session"), h("dd", { id: "session-answers" }, String(s.answered))),
      ),
      levelBar("project-level-bar", points, level, levelAt, levelAt + per),
    );
  }

  function drawStreak(progress) {
    if (progress) s.dayStreak = progress.streak_days;
    const parts = [];
    if (s.streak > 1) parts.push(`${s.streak} answers in a row`);
    if (s.dayStreak) parts.push(s.dayStreak === 1 ? "1 day streak" : `${s.dayStreak} day streak`);
    streakBox.textContent = parts.length ? `Streak: ${parts.join(" · ")}` : "Answer a clip to start a streak.";
  }

  function afterAnswer(result) {
    const n = s.answered;
    if (n === 1 || n % 5 === 0 || result.level !== s.shownLevel) setTimeout(loadProgress, 300);
    if (n === 1 || n % 5 === 0) setTimeout(loadBoard, 600);
    if (n === 1 || n % 10 === 0) {
      setTimeout(loadStatus, 900);
    }
  }

  async function loadProgress() {
    if (s.destroyed) return;
    let progress;
    try {
      progress = await fetchProgress(projectId);
    } catch {
      return;
    }
    if (s.destroyed) return;
    const mine = progress.project;
    s.perLevel = mine.next_level_at - mine.level_at;
    s.level = mine.level;
    s.shownLevel = mine.level;
    drawProjectStats(mine.points, mine.level);
    drawStreak(progress);
    const earned = progress.badges.filter((b) => b.earned).map((b) => b.id);
    if (s.badges) {
      const fresh = progress.badges.filter((b) => b.earned && !s.badges.includes(b.id));
      for (const b of fresh) {
        const toast = h("span", { class: "floater badge-toast" }, `★ ${b.name}`);
        toast.addEventListener("animationend", () => toast.remove());
        feedback.append(toast);
        announce(`New badge: ${b.name}. ${b.description}`);
      }
    }
    s.badges = earned;
    replace(badgeBox, h("h3", {}, "Badges"), badgeList(progress.badges));
  }

  async function loadBoard() {
    if (s.destroyed) return;
    try {
      const board = await api("GET", `/projects/${projectId}/leaderboard`);
      if (!s.destroyed) replace(boardBox, boardTable(board, `${project.name}: top listeners`));
    } catch (e) {
      if (!s.destroyed) replace(boardBox, h("p", { class: "muted" }, e instanceof ApiError && e.status === 403 ? "Answer a clip to join this project's leaderboard." : "The leaderboard could not be loaded."));
    }
  }

  async function loadStatus() {
    if (s.destroyed) return null;
    const status = await api("GET", `/projects/${projectId}/status`).catch(() => null);
    if (!status || s.destroyed) return status;
    const finished = status.clips_by_status.done + status.clips_by_status.low_agreement;
    const detail = `${percent(status.progress)}: ${finished} of ${status.clips} clips finished`;
    replace(progressBox, progressBar("project-progress", "Project progress", status.progress, detail));
    return status;
  }

  // ---- keyboard ----
  let swallowSpace = false;
  async function openGuide() {
    if (!hasGuide(guide) || s.guideOpen || s.destroyed) return;
    s.guideOpen = true;
    audio.pause();
    await showGuide(projectId, guide, project.name);
    s.guideOpen = false;
    if (!s.destroyed) (guideButton || title).focus();
  }

  function onKey(e) {
    if (s.destroyed || s.guideOpen || e.altKey || e.ctrlKey || e.metaKey || e.defaultPrevented) return;
    const t = e.target;
    const tag = t && t.tagName;
    const typing = (tag === "INPUT" && t.type !== "range") || tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable);
    if (typing) return;
    // the page's own controls, or nothing in particular (the body, or <main> after the skip link)
    const inTask = !t || t === document.body || page.contains(t) || (t.contains && t.contains(page));
    const c = s.controls;
    const key = e.key;
    if ((key === "g" || key === "G") && guideButton) {
      e.preventDefault();
      openGuide();
      return;
    }
    if (key === "r" || key === "R") {
      e.preventDefault();
      replay();
      return;
    }
    if (key === " ") {
      const toggleFocused = t && t.classList && t.classList.contains("toggle");
      const link = tag === "A";
      if (inTask && !toggleFocused && !link) {
        e.preventDefault();
        swallowSpace = true;
        replay();
      }
      return;
    }
    if (key === "Backspace") {
      if (inTask) {
        e.preventDefault();
        undo();
      }
      return;
    }
    if (!inTask || !c) return;
    if (key === "c" || key === "C" || key === "?") {
      e.preventDefault();
      submit(CANT_TELL);
      return;
    }
    if (KEYS.includes(key)) {
      const hit = (c.type === "multilabel" ? c.toggles : c.buttons || []).find((b) => b.dataset.key === key);
      if (hit && c.type === "multilabel") {
        e.preventDefault();
        toggle(hit);
      } else if (hit) {
        e.preventDefault();
        submit(hit.dataset.value);
      }
      return;
    }
    if (key === "Enter" && (c.type === "multilabel" || c.type === "continuous")) {
      if (tag === "BUTTON" && !t.classList.contains("toggle") && t !== c.send) return; // native click
      e.preventDefault();
      if (c.type === "multilabel") submitTags();
      else submit(Number(c.slider.value));
      return;
    }
    if (c.type === "continuous" && t !== c.slider && ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(key)) {
      e.preventDefault();
      const step = Number(c.slider.step) * (key === "ArrowLeft" || key === "ArrowDown" ? -1 : 1);
      const value = Math.min(Number(c.slider.max), Math.max(Number(c.slider.min), Number(c.slider.value) + step));
      c.slider.value = String(value);
      c.output.textContent = c.slider.value;
    }
  }
  function onKeyUp(e) {
    if (e.key === " " && swallowSpace) {
      e.preventDefault();
      swallowSpace = false;
    }
  }
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", onKeyUp);

  drawStreak();
  drawProjectStats(0, 1);
  loadStatus();
  loadProgress();
  // the guidelines first (once per version on this device): the first lease waits for them
  const first = (hasGuide(guide) && !guideSeen(projectId, guide) ? openGuide() : Promise.resolve()).then(() =>
    s.destroyed ? null : loadNext(null),
  );
  first.then(loadBoard, loadBoard); // `next` makes the caller a member: the board needs that

  return function cleanup() {
    s.destroyed = true;
    document.getElementById("guide-dialog")?.close();
    dropAhead();
    clearTimeout(s.poll);
    if (s.frame) cancelAnimationFrame(s.frame);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("keyup", onKeyUp);
    audio.pause();
    audio.removeAttribute("src");
    if (s.current) {
      if (s.current.blob) URL.revokeObjectURL(s.current.audio);
      if (s.current.imageUrl) URL.revokeObjectURL(s.current.imageUrl);
    }
  };
}
