// imbridge console: refreshes the live panels, runs lookups in place, and asks before any action.
// No framework and nothing from the internet: the server renders the HTML, this file swaps it in.
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh-ms"), 10) || 2000;

  function refresh() {
    fetch("/api/panels", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        document.getElementById("panels").innerHTML = html;
        body.setAttribute("data-live", "1");
        document.getElementById("live").textContent = "live, updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        // The next round tries again; the last numbers stay, marked stale.
        body.setAttribute("data-live", "0");
        document.getElementById("live").textContent = "not updating: the console does not answer";
      })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);

  var form = document.getElementById("trace-form");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var params = new URLSearchParams(new FormData(form));
    history.replaceState(null, "", "/?" + params.toString());
    params.set("format", "html");
    var out = document.getElementById("trace");
    out.textContent = "looking…";
    fetch("/api/trace?" + params.toString(), { cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) { out.innerHTML = html; })
      .catch(function (e) { out.textContent = "lookup failed: " + e; });
  });

  // Actions exist only when the server has an admin token; each asks first and sends the token.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (!b) return;
    var action = b.getAttribute("data-action");
    var conv = b.getAttribute("data-conversation");
    var n = b.getAttribute("data-records");
    var what = action === "replay"
      ? "Re-drive " + n + " record(s) of " + conv + " to their topic, in order, and unpark it?"
      : "Give up on " + n + " record(s) of " + conv + " (they are NOT applied) and unpark it?";
    if (!window.confirm(what)) return;
    var token = sessionStorage.getItem("imbridge-admin-token") || window.prompt("admin token");
    if (!token) return;
    fetch("/api/dlq/" + action, {
      method: "POST",
      headers: { "content-type": "application/json", "authorization": "Bearer " + token },
      body: JSON.stringify({ conversation: conv, confirm: true })
    }).then(function (r) {
      return r.text().then(function (t) {
        if (r.ok) { sessionStorage.setItem("imbridge-admin-token", token); } else { sessionStorage.removeItem("imbridge-admin-token"); }
        window.alert((r.ok ? "done: " : "refused: ") + t);
      });
    });
  });
})();
