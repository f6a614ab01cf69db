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

// A live region being replaced must not steal the keyboard focus of someone on a button
// inside it: htmx keeps focus by id, so a polled fragment is not swapped while one of its
// forms has focus (the next poll brings it up to date).
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (target && target.contains(document.activeElement) && document.activeElement !== document.body) {
    const active = document.activeElement;
    if (active.tagName === "BUTTON" || active.tagName === "SELECT" || active.tagName === "INPUT") {
      event.detail.shouldSwap = false;
    }
  }
});
