// muster's own script: says whether a page's live stream is connected, and copies. Everything else is
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
  // A button with data-copy="<id>" copies that element's text (the portal's new secret).
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button[data-copy]");
    if (!button || !navigator.clipboard) { return; }
    var source = document.getElementById(button.dataset.copy);
    if (!source) { return; }
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = button.dataset.copied || button.textContent;
    });
  });
})();
