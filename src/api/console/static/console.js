// salve's console: live rows, a pause toggle, forms answered in place, and matchers
// checked as they are typed. Every page works without this file.
"use strict";

(function () {
  const body = document.body;
  const rows = document.querySelector("[data-rows]");
  const status = document.getElementById("live-status");
  const pause = document.getElementById("pause");
  const interests = {
    decision: ["decision", "outcome"],
    approval: ["approval_requested", "approval_decided", "decision"],
    state_reset: ["state_reset", "outcome", "decision"],
  };
  let waiting = false;

  function say(text) {
    if (status) status.textContent = text;
  }

  if (pause) {
    pause.checked = localStorage.getItem("salve-pause") === "1";
    pause.addEventListener("change", function () {
      localStorage.setItem("salve-pause", pause.checked ? "1" : "0");
      if (!pause.checked && waiting) refresh();
    });
  }

  // A form someone is filling in is never swapped out from under them.
  function formOpen() {
    const active = document.activeElement;
    if (active && active.form && rows && rows.contains(active)) return true;
    return Array.from(rows ? rows.querySelectorAll("input[type=text], input:not([type]), textarea") : [])
      .some(function (input) { return input.value !== input.defaultValue; });
  }

  async function refresh() {
    if (!rows) return;
    if ((pause && pause.checked) || formOpen()) {
      waiting = true;
      say(pause && pause.checked ? "paused: new records waiting" : "new records wait until the form is sent");
      return;
    }
    waiting = false;
    try {
      const answer = await fetch(location.pathname + location.search, {
        headers: { "X-Salve-Rows": "1" },
        credentials: "same-origin",
      });
      if (answer.ok) {
        rows.innerHTML = await answer.text();
        bindForms(rows);
        say("updated " + new Date().toLocaleTimeString());
      }
    } catch (e) {
      say("could not update: " + e);
    }
  }

  const live = body.dataset.live;
  if (live && rows && window.EventSource) {
    const wanted = interests[live] || [live];
    const stream = new EventSource("/ui/stream");
    stream.onopen = function () { say("live"); };
    stream.onerror = function () { say("reconnecting…"); };
    stream.onmessage = function (message) {
      let record;
      try { record = JSON.parse(message.data); } catch (e) { return; }
      if (wanted.indexOf(record.kind) >= 0) refresh();
    };
    document.addEventListener("focusout", function () { if (waiting) setTimeout(refresh, 200); });
  }

  // Forms marked data-async are sent without leaving the page; the list is then
  // read again. Without this file they are plain forms, answered with a redirect.
  function bindForms(root) {
    root.querySelectorAll("form[data-async]").forEach(function (form) {
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const submitter = event.submitter;
        const action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
        const data = new URLSearchParams(new FormData(form));
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        try {
          const answer = await fetch(action, { method: "POST", body: data, credentials: "same-origin" });
          if (!answer.ok) {
            const page = new DOMParser().parseFromString(await answer.text(), "text/html");
            const why = page.querySelector(".message");
            say((why && why.textContent) || ("refused: " + answer.status));
          }
        } catch (e) {
          say("not sent: " + e);
        }
        form.reset();
        waiting = false;
        if (document.activeElement) document.activeElement.blur();
        await refresh();
      });
    });
  }
  bindForms(document);

  const matchers = document.getElementById("matchers");
  const verdict = document.getElementById("matchers-check");
  if (matchers && verdict) {
    let timer = null;
    matchers.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(async function () {
        if (!matchers.value.trim()) { verdict.textContent = ""; return; }
        const answer = await fetch(matchers.dataset.check + "?matchers=" + encodeURIComponent(matchers.value), { credentials: "same-origin" });
        const result = await answer.json();
        verdict.textContent = result.ok ? "✓ " + result.matchers : "✗ " + result.error;
        verdict.className = result.ok ? "ok" : "error";
        matchers.setCustomValidity(result.ok ? "" : result.error);
      }, 250);
    });
  }
})();
