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

// The upload form (data-upload): files dropped on its zone or chosen are sent one request
// each, with a progress bar per file; the page then shows the list again. Without this
// script the form posts every chosen file at once.
(() => {
  const form = document.querySelector("form[data-upload]");
  if (!form || !("FormData" in window)) return;
  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector("[data-drop-zone]");
  const list = form.querySelector("[data-uploads]");
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  const sendOne = (file) =>
    new Promise((resolve) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = file.size || 1;
      bar.value = 0;
      bar.setAttribute("aria-label", `Upload of ${file.name}`);
      const said = document.createElement("span");
      said.className = "upload-state";
      item.append(name, " ", bar, " ", said);
      list.append(item);

      const body = new FormData();
      body.append("files", file);
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRFToken", token);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          bar.max = event.total;
          bar.value = event.loaded;
        }
      });
      request.addEventListener("load", () => {
        let answer = {};
        try {
          answer = JSON.parse(request.responseText);
        } catch {
          // not JSON: a proxy's page; the status says enough
        }
        const ok = request.status === 201;
        bar.value = bar.max;
        said.textContent = ok ? "uploaded" : (answer.problems || [`failed (${request.status})`]).join(" ");
        item.className = ok ? "upload-done" : "upload-failed";
        resolve(ok);
      });
      request.addEventListener("error", () => {
        said.textContent = "failed: the connection was lost";
        item.className = "upload-failed";
        resolve(false);
      });
      request.send(body);
    });

  const sendAll = async (files) => {
    if (!files.length) return;
    list.replaceChildren();
    const results = [];
    for (const file of files) results.push(await sendOne(file));
    input.value = "";
    // Show the new documents in the list; failed uploads stay listed with their reason.
    if (results.every(Boolean)) window.location.reload();
    else htmx.ajax("GET", window.location.pathname, { target: "#document-rows", swap: "outerHTML" });
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendAll([...input.files]);
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    sendAll([...event.dataTransfer.files]);
  });
})();
