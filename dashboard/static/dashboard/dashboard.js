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
