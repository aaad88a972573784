// ThisDB's few enhancements; every page works without them.
// - [data-copy="#id"]: a button that copies the text of #id (the API key or token shown once).
// - form[data-confirm="..."]: asks before a destructive submit (revoke, delete).
// - [role=tablist]: the docs' curl / Python / JavaScript example tabs.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => selectText(source));
  } else {
    selectText(source);
  }
});

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

document.addEventListener("click", (event) => {
  const tab = event.target.closest("[role=tab]");
  if (!tab) return;
  const list = tab.closest("[role=tablist]");
  const language = tab.dataset.language;
  // Every example on the page switches together, so a reader stays in one language.
  document.querySelectorAll("[role=tab]").forEach((other) => {
    other.setAttribute("aria-selected", String(other.dataset.language === language));
  });
  document.querySelectorAll(".tab-panel").forEach((panel) => {
    panel.hidden = panel.dataset.language !== language;
  });
  if (list) tab.focus();
});

// Without this script every example stays visible; with it, one language at a time.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".tab-panel").forEach((panel) => {
    panel.hidden = panel.dataset.language !== "curl";
  });
});
