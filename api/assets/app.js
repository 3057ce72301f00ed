// muster's own script: says whether a page's live stream is connected. Everything else is
// htmx attributes in the HTML. No build step: this file is served as written.
(function () {
  "use strict";
  function show(connected) {
    document.querySelectorAll(".live-state").forEach(function (el) {
      el.dataset.state = connected ? "on" : "off";
      el.textContent = connected ? el.dataset.on : el.dataset.off;
    });
  }
  document.addEventListener("htmx:sseOpen", function () { show(true); });
  document.addEventListener("htmx:sseError", function () { show(false); });
  document.addEventListener("htmx:sseClose", function () { show(false); });
})();
