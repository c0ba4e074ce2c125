// Live refresh for the dashboard: every element with `data-poll` is replaced, once a second,
// by a fresh copy fetched from that URL; the server leaves `data-poll` out once nothing more
// will change (a run that has ended), which stops the polling. Pages work without this file.
(function () {
  "use strict";
  function poll(region) {
    var url = region.getAttribute("data-poll");
    if (!url) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        // A redirect means the session ended: stop rather than show the login page inside.
        if (!response.ok || response.redirected) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = document.createRange().createContextualFragment(html).firstElementChild;
        // Keyboard focus inside the region (on a button, say) moves to its new copy.
        var focused = region.contains(document.activeElement) ? document.activeElement.id : "";
        region.replaceWith(fresh);
        var again = focused && document.getElementById(focused);
        if (again) {
          again.focus();
        }
        setTimeout(function () { poll(fresh); }, 1000);
      })
      .catch(function () {
        setTimeout(function () { poll(region); }, 5000);
      });
  }
  document.querySelectorAll("[data-poll]").forEach(function (region) {
    setTimeout(function () { poll(region); }, 1000);
  });
})();
