// Keeps "2 h 05 min left" / "overdue by 40 min" current on elements that
// carry data-deadline (an ISO time). The server wrote the first text and gives
// the words in the page's language: data-left and data-overdue ("{}" is the
// span), data-units ("d,h,min").
(function () {
  "use strict";
  function span(ms, units) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days) { return days + " " + units[0] + " " + hours + " " + units[1]; }
    if (hours) { return hours + " " + units[1] + " " + (mins < 10 ? "0" : "") + mins + " " + units[2]; }
    return mins + " " + units[2];
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      var units = (el.getAttribute("data-units") || "d,h,min").split(",");
      var form = el.getAttribute(left >= 0 ? "data-left" : "data-overdue") || "{}";
      var text = form.replace("{}", span(left, units));
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("bad", left < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
