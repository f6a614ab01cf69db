// The dashboard's own script. Pages work without it; it only makes them nicer.
"use strict";

// A form marked data-submit-once posts once: its button is disabled on the first submit.
// (The form also carries an idempotency key, so a second post that gets through anyway
// replays the first submission instead of making another task.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) return;
  if (form.dataset.submitted === "true") {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "true";
  for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = true;
});

// Live parts that follow the owner's event stream (data-task-events, the URL with where to
// start) refresh when one of the owner's tasks changes: the list on any change, a task's
// page on its own (data-task-id). A refresh asked for while one is under way runs once it
// has ended, so the last change is always shown. If the stream cannot be held (the server
// refused it, or this browser has no EventSource), the part refreshes each second instead.
(() => {
  let source = null;
  let fallback = null;
  let inFlight = false;
  let again = false;

  const livePart = () => document.querySelector("[data-task-events]");

  const refresh = () => {
    if (!livePart()) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    htmx.trigger(document.body, "task-changed");
  };

  const settled = () => {
    inFlight = false;
    if (again) {
      again = false;
      refresh();
    }
  };

  const pollInstead = () => {
    if (source) source.close();
    source = null;
    if (!fallback) fallback = setInterval(refresh, 1000);
  };

  const follow = () => {
    const part = livePart();
    if (!part) {
      // Nothing on the page moves any more.
      if (source) source.close();
      source = null;
      clearInterval(fallback);
      fallback = null;
      return;
    }
    if (source || fallback) return;
    if (!("EventSource" in window)) {
      pollInstead();
      return;
    }
    source = new EventSource(part.dataset.taskEvents);
    source.addEventListener("task", (event) => {
      const current = livePart();
      const onlyTask = current && current.dataset.taskId;
      if (onlyTask && JSON.parse(event.data).id !== onlyTask) return;
      refresh();
    });
    source.addEventListener("error", () => {
      // EventSource reconnects by itself after a dropped stream; CLOSED means it gave up.
      if (source && source.readyState === EventSource.CLOSED) pollInstead();
    });
  };

  document.addEventListener("DOMContentLoaded", follow);
  document.body?.addEventListener("htmx:afterSettle", () => {
    settled();
    follow();
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    if (!event.detail.successful) settled();
  });
})();
