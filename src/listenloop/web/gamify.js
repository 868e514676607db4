// Points, levels, streaks, badges and leaderboards (GET /users/me/progress, /leaderboard,
// /projects/{id}/leaderboard). Never shows trust or which tasks were checks.

import { api } from "./api.js";
import { h, progressBar, replace } from "./dom.js";

/** The browser's offset from UTC in minutes east (what the server counts days by). */
export function utcOffsetMinutes() {
  return -new Date().getTimezoneOffset();
}

/** GET the caller's progress (optionally with one project's points). */
export function fetchProgress(projectId) {
  const query = new URLSearchParams({ offset_minutes: String(utcOffsetMinutes()) });
  if (projectId) query.set("project_id", String(projectId));
  return api("GET", `/users/me/progress?${query}`);
}

/** A level bar: "Level 3 · 460 points", progress to the next level. */
export function levelBar(id, points, level, levelAt, nextAt) {
  const span = Math.max(nextAt - levelAt, 1);
  const detail = `${nextAt - points} points to level ${level + 1}`;
  return progressBar(id, `Level ${level}`, (points - levelAt) / span, detail);
}

/** The badges as a list: earned ones bright, the rest dimmed with what earns them. */
export function badgeList(badges) {
  return h(
    "ul",
    { class: "badges" },
    badges.map((b) =>
      h(
        "li",
        { class: b.earned ? "badge earned" : "badge", title: b.description },
        h("span", { class: "badge-icon", "aria-hidden": "true" }, b.earned ? "★" : "☆"),
        h("span", { class: "badge-name" }, b.name),
        h("span", { class: "visually-hidden" }, b.earned ? " (earned)" : ` (not yet: ${b.description})`),
      ),
    ),
  );
}

/** A leaderboard table with a caption; the caller's row is marked. Ranked by score: the points
 * weighted by how accurate the crowd model (refreshed now and then) rates each annotator. */
export function boardTable(board, caption) {
  if (!board.entries.length) {
    return h("p", { class: "muted" }, "No answers yet: the first place is free.");
  }
  const rows = board.entries.map((e) =>
    h(
      "tr",
      { class: e.me ? "me" : null, "aria-current": e.me ? "true" : null },
      h("td", {}, String(e.rank)),
      h("th", { scope: "row", class: "name" }, e.username, e.me ? h("span", { class: "you" }, " (you)") : null),
      h("td", {}, String(e.score)),
      h("td", {}, String(e.points)),
      h("td", {}, String(e.answers)),
      h("td", {}, String(e.level)),
    ),
  );
  const table = h(
    "table",
    { class: "board" },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "#"),
        h("th", { scope: "col" }, "Name"),
        h("th", { scope: "col", title: "Points weighted by how accurate your answers are rated (updated every few dozen answers)" }, "Score"),
        h("th", { scope: "col" }, "Points"),
        h("th", { scope: "col" }, "Answers"),
        h("th", { scope: "col" }, "Level"),
      ),
    ),
    h("tbody", {}, rows),
  );
  const mine = board.me && !board.entries.some((e) => e.me) ? h("p", { class: "muted" }, `You are #${board.me.rank} with a score of ${board.me.score} (${board.me.points} points).`) : null;
  return h("div", { class: "board-wrap" }, table, mine);
}

/** A summary of the caller's standing: points, level bar, day streak. */
export function standing(progress) {
  const streak = progress.streak_days;
  return h(
    "div",
    { class: "standing" },
    h(
      "dl",
      { class: "stats" },
      h("div", {}, h("dt", {}, "Points"), h("dd", {}, String(progress.points))),
      h("div", {}, h("dt", {}, "Answers"), h("dd", {}, String(progress.answers))),
      h("div", {}, h("dt", {}, "Day streak"), h("dd", {}, streak === 1 ? "1 day" : `${streak} days`)),
      h("div", {}, h("dt", {}, "Best streak"), h("dd", {}, `${progress.best_streak_days} d`)),
    ),
    levelBar("overall-level", progress.points, progress.level, progress.level_at, progress.next_level_at),
  );
}

/** The #/leaderboard page: my progress and badges, then the overall board. */
export async function renderOverall(root) {
  const [progress, board] = await Promise.all([fetchProgress(), api("GET", "/leaderboard")]);
  replace(
    root,
    h(
      "section",
      { class: "overall", "aria-labelledby": "overall-title" },
      h("h1", { id: "overall-title" }, "Your progress"),
      h("div", { class: "card" }, standing(progress), h("h2", {}, "Badges"), badgeList(progress.badges)),
      h("h2", { id: "board-title" }, "Leaderboard"),
      h("div", { class: "card" }, boardTable(board, "Everyone, all projects")),
    ),
  );
}
