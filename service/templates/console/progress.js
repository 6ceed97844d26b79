// Progress without reloading: while an element with data-refresh is on the page (an edition being
// sent), fetch its fresh copy every few seconds and swap it in. Without JavaScript the page still
// works: reloading it shows the same figures.
(function () {
  "use strict";
  var EVERY = 3000, AFTER_ERROR = 15000;
  function tick() {
    var box = document.querySelector("[data-refresh]");
    if (!box) { return; }
    fetch(box.getAttribute("data-refresh"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(box.id);
        if (fresh && fresh.outerHTML !== box.outerHTML) { box.replaceWith(fresh); }
        setTimeout(tick, EVERY);
      })
      .catch(function () { setTimeout(tick, AFTER_ERROR); });
  }
  setTimeout(tick, EVERY);
}());
