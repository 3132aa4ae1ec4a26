// revwatch UI: the only script. Refreshes pages that ask for it (data-refresh on <main>) by fetching the same
// URL and swapping <main>; a redirect to the sign-in page (expired session) reloads, so the form shows.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var period = main && parseInt(main.getAttribute("data-refresh") || "0", 10);
  if (!period) return;
  function refresh() {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected && r.url.indexOf("/ui/login") >= 0) { location.reload(); return null; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (fresh) main.innerHTML = fresh.innerHTML;
      })
      .catch(function (e) {
        var s = document.getElementById("refresh-state");
        if (s) { s.textContent = "· refresh failed (" + e.message + "), retrying"; s.className = "stale"; }
      });
  }
  setInterval(refresh, period * 1000);
})();
