// Keeps "2 h 05 min left" / "overdue by 9 min 30 s" current on elements that
// carry data-deadline (an ISO time). The server wrote the first text and gives
// the words in the page's language: data-left and data-overdue ("{}" is the
// span), data-units ("d,h,min,s").
(function () {
  "use strict";
  function span(ms, units) {
    var total = Math.floor(Math.abs(ms) / 1000);
    var minutes = Math.floor(total / 60);
    var secs = total % 60;
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (days) { return days + " " + units[0] + " " + hours + " " + units[1]; }
    if (hours) { return hours + " " + units[1] + " " + two(mins) + " " + units[2]; }
    return mins + " " + units[2] + " " + two(secs) + " " + units[3];
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      var units = (el.getAttribute("data-units") || "d,h,min,s").split(",");
      var form = el.getAttribute(left >= 0 ? "data-left" : "data-overdue") || "{}";
      var text = form.replace("{}", span(left, units));
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("bad", left < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
