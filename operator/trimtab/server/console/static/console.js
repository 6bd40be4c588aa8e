// The console's own script: a run's events, live (Server-Sent Events, which resume by
// themselves with Last-Event-ID); each pool's queue depth as a sparkline; and the
// review editor's check that an edited output is JSON before it is sent (the server
// checks it against the step's schema).
(function () {
  "use strict";

  function followEvents() {
    var list = document.getElementById("events");
    if (!list || !window.EventSource) return;
    var source = new EventSource(list.dataset.source);
    var text = {};
    function add(kind, data) {
      var item = document.createElement("li");
      var at = data.at ? new Date(parseFloat(data.at)).toLocaleTimeString() + " " : "";
      item.textContent = at + kind + (data.step ? " " + data.step : "") +
        (data.status ? " " + data.status : "") + (data.reason ? ": " + data.reason : "") +
        (data.error ? ": " + data.error : "");
      list.appendChild(item);
      list.scrollTop = list.scrollHeight;
    }
    // The event types come from the page (the server's own list), as do the two read
    // apart: a streaming step's text, and the run's end.
    var tokens = list.dataset.tokens, done = list.dataset.done;
    list.dataset.kinds.split(",").forEach(function (kind) {
      if (kind === tokens || kind === done) return;
      source.addEventListener(kind, function (e) { add(kind, JSON.parse(e.data)); });
    });
    source.addEventListener(tokens, function (e) {
      var data = JSON.parse(e.data);
      var key = data.step || "";
      if (!text[key]) { text[key] = document.createElement("li"); list.appendChild(text[key]); }
      text[key].dataset.text = (text[key].dataset.text || "") + (data.text || "");
      text[key].textContent = "tokens " + key + ": " + text[key].dataset.text;
    });
    source.addEventListener(done, function (e) {
      add(done, JSON.parse(e.data));
      source.close();
    });
  }

  var history = {};
  function sparklines() {
    document.querySelectorAll("tr[data-pool]").forEach(function (row) {
      var name = row.dataset.pool;
      var values = history[name] = (history[name] || []).concat([parseInt(row.dataset.queue, 10) || 0]).slice(-60);
      var svg = row.querySelector("svg[data-spark]");
      if (!svg) return;
      var most = Math.max.apply(null, values.concat([1]));
      var points = values.map(function (v, i) { return (i * 2) + "," + (22 - (v / most) * 20); }).join(" ");
      svg.innerHTML = '<polyline points="' + points + '"/>';
    });
  }

  function checkEdits() {
    var area = document.getElementById("output");
    var hint = document.getElementById("output-check");
    if (!area || !hint) return;
    area.addEventListener("input", function () {
      try { JSON.parse(area.value); hint.textContent = "Valid JSON."; }
      catch (err) { hint.textContent = "Not JSON yet: " + err.message; }
    });
  }

  function localTimes() {
    document.querySelectorAll("time[data-ms]").forEach(function (t) {
      t.textContent = new Date(parseFloat(t.dataset.ms)).toLocaleString();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    followEvents(); sparklines(); checkEdits(); localTimes();
    document.body.addEventListener("htmx:afterSwap", function () { sparklines(); localTimes(); });
  });
})();
