// The bucket page's list of keys, live (templates/dashboard/bucket.html): a watch of the bucket
// (its page's /watch/ route: Server-Sent Events, from the position the page was read at) updates
// the rows shown as their keys change.
// - A changed key's row shows its new value, size and expiry (its version in data-version).
// - A deleted or expired key's row stays, struck through, saying which.
// - A new key that would show on this page is not drawn here (the server draws keys, with their
//   invisible characters made visible): a notice counts them, with a link that reloads the page.
// - "● live" while the stream is open, "offline" while it is not; it reconnects by itself and
//   resumes where it stopped.
// Without this script the page is the same list, as of when it was loaded.
"use strict";

(() => {
  const indicator = document.getElementById("live");
  const notice = document.getElementById("live-notice");
  if (!indicator || !notice || !window.EventSource) return;

  const PREVIEW_CHARS = 200; // as dashboard.views.PREVIEW_CHARS
  const rows = new Map(); // a shown row by its key's reference (dashboard.roundtrip.key_ref)
  document.querySelectorAll("#key-table tbody tr[data-ref]").forEach((row) => {
    rows.set(row.dataset.ref, row);
  });
  // A new key shows on this page if it sorts between these (null: the page's end is open).
  const after = indicator.dataset.after ? refBytes(indicator.dataset.after) : null;
  const before = indicator.dataset.before ? refBytes(indicator.dataset.before) : null;
  const newKeys = new Set();
  const notes = { missed: false, ended: "" };
  let source = null;
  let since = null; // the last position seen
  let pause = 1000; // before reconnecting; doubles to a minute while it fails
  let timer = null;

  indicator.hidden = false;
  connect();

  function connect() {
    timer = null;
    const url = new URL(indicator.dataset.watch, window.location.href);
    if (since !== null) url.searchParams.set("since", since);
    source = new EventSource(url);
    source.addEventListener("open", () => {
      pause = 1000;
      showLive(true);
    });
    source.addEventListener("error", () => {
      // Reconnect ourselves, from the last position seen (an EventSource would send its first
      // URL again, whose since= is the page's).
      source.close();
      showLive(false);
      if (!notes.ended) retryLater();
    });
    source.addEventListener("put", (event) => {
      seen(event);
      put(JSON.parse(event.data));
    });
    source.addEventListener("delete", (event) => {
      seen(event);
      gone(JSON.parse(event.data));
    });
    source.addEventListener("reset", (event) => {
      seen(event); // the history no longer holds every change since the page was read
      notes.missed = true;
      say();
    });
    source.addEventListener("cancel", (event) => {
      const reason = JSON.parse(event.data).reason;
      source.close();
      showLive(false);
      notes.ended = reason === "bucket_deleted" ? "This bucket was deleted." : "Live updates ended.";
      say();
    });
  }

  function retryLater() {
    if (timer !== null) return;
    timer = setTimeout(connect, pause);
    pause = Math.min(pause * 2, 60000);
  }

  function seen(event) {
    if (event.lastEventId) since = event.lastEventId;
  }

  function showLive(on) {
    indicator.textContent = on ? "● live" : "offline";
    indicator.classList.toggle("on", on);
    indicator.title = on ? "Changes show here as they happen" : "Not following changes now";
  }

  // Pages kept for the back button: no stream while away, resumed on return.
  window.addEventListener("pagehide", () => {
    if (source) source.close();
    if (timer !== null) clearTimeout(timer);
    timer = null;
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !notes.ended) connect();
  });

  // Events ---------------------------------------------------------------------------------------

  function put(data) {
    const row = rows.get(keyRef(data.key));
    if (!row) {
      if (onThisPage(data.key) && !newKeys.has(data.key)) {
        newKeys.add(data.key);
        say();
      }
      return;
    }
    const binary = data.encoding === "base64" || data.value.includes("\u0000");
    const size = data.encoding === "base64" ? base64Size(data.value) : utf8(data.value).length;
    const cell = row.querySelector("td.value");
    cell.replaceChildren();
    if (binary) {
      const label = document.createElement("span");
      label.className = "muted";
      label.textContent = "binary";
      const link = document.createElement("a");
      link.href = `${indicator.dataset.download}?k=${row.dataset.ref}`;
      link.textContent = "download";
      cell.append(label, " · ", link);
    } else {
      const head = Array.from(data.value.slice(0, 2 * PREVIEW_CHARS + 2)); // by characters
      const pre = document.createElement("pre");
      pre.className = "preview";
      pre.textContent = head.slice(0, PREVIEW_CHARS).join("") + (head.length > PREVIEW_CHARS ? "…" : "");
      cell.append(pre);
    }
    row.querySelector("td.num").textContent = fileSize(size);
    row.querySelector("td.expires").textContent = data.ttl ? `in ${timeUntil(data.ttl)}` : "never";
    const increment = row.querySelector("form.increment");
    if (increment) increment.hidden = binary || !isInteger(data.value);
    const remove = row.querySelector("form.delete");
    if (remove) remove.hidden = false;
    row.classList.remove("gone");
    row.dataset.version = data.version;
    flash(row);
  }

  function gone(data) {
    if (newKeys.delete(data.key)) say();
    const row = rows.get(keyRef(data.key));
    if (!row) return;
    const cell = row.querySelector("td.value");
    const why = document.createElement("span");
    why.className = "muted";
    why.textContent = data.reason === "expired" ? "expired" : "deleted";
    cell.replaceChildren(why);
    row.querySelector("td.num").textContent = "—";
    row.querySelector("td.expires").textContent = "—";
    row.querySelectorAll("form").forEach((form) => { form.hidden = true; });
    row.classList.add("gone");
    row.dataset.version = data.version;
    flash(row);
  }

  function say() {
    const parts = [];
    if (newKeys.size) {
      const keys = newKeys.size === 1 ? "1 new key" : `${newKeys.size} new keys`;
      parts.push(`${keys} on this page since it was loaded.`);
    }
    if (notes.missed) parts.push("Some changes could not be followed.");
    if (notes.ended) parts.push(notes.ended);
    notice.querySelector("span").textContent = parts.join(" ");
    notice.hidden = parts.length === 0;
  }

  function flash(row) {
    row.classList.remove("changed");
    void row.offsetWidth; // restart the animation
    row.classList.add("changed");
  }

  // Keys and values ------------------------------------------------------------------------------

  function utf8(text) {
    return new TextEncoder().encode(text);
  }

  function keyRef(key) {
    // dashboard.roundtrip.key_ref: base64url of the key's UTF-8 bytes, without padding.
    let binary = "";
    for (const byte of utf8(key)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function refBytes(ref) {
    const padded = ref.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((ref.length + 3) % 4);
    return Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
  }

  function compareBytes(a, b) {
    // Keys sort byte by byte (PostgreSQL's "C" collation).
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i += 1) {
      if (a[i] !== b[i]) return a[i] - b[i];
    }
    return a.length - b.length;
  }

  function onThisPage(key) {
    const bytes = utf8(key);
    return (after === null || compareBytes(bytes, after) > 0)
      && (before === null || compareBytes(bytes, before) < 0);
  }

  function base64Size(text) {
    const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
    return (text.length / 4) * 3 - padding;
  }

  function isInteger(value) {
    // api.statements.parse_integer: a whole number with an optional sign, in 64 bits.
    const text = value.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
    if (!/^[+-]?[0-9]+$/.test(text)) return false;
    const number = BigInt(text);
    return number >= -(2n ** 63n) && number < 2n ** 63n;
  }

  // Django's filesizeformat and timeuntil, as the page's rows were drawn ("\u00a0": no break).
  function fileSize(bytes) {
    if (bytes < 1024) return `${bytes}\u00a0${bytes === 1 ? "byte" : "bytes"}`;
    const units = ["KB", "MB", "GB", "TB", "PB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)}\u00a0${units[unit]}`;
  }

  function timeUntil(seconds) {
    const chunks = [
      ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400],
      ["day", 86400], ["hour", 3600], ["minute", 60],
    ];
    const counts = [];
    let left = seconds;
    for (const [name, size] of chunks) {
      counts.push([name, Math.floor(left / size)]);
      left %= size;
    }
    let i = counts.findIndex(([, count]) => count > 0);
    if (i < 0) return "0\u00a0minutes";
    const parts = [];
    while (i < counts.length && parts.length < 2 && counts[i][1] > 0) {
      const [name, count] = counts[i];
      parts.push(`${count}\u00a0${name}${count === 1 ? "" : "s"}`);
      i += 1;
    }
    return parts.join(", ");
  }
})();
