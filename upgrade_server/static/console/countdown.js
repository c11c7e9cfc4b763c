// Live countdowns: every element with data-deadline (an ISO 8601 instant) has its
// text rewritten each second as the time left, or how long overdue. The server
// renders the same text, so the page reads right without this script.
// The words come from the nearest ancestor with data-countdown-units ("d h min s"),
// data-countdown-left ("{time} left") and data-countdown-overdue ("overdue by {time}");
// data-countdown-now (the server's time when it rendered) corrects a client clock
// that is off.
(function () {
  "use strict";
  var elements = Array.prototype.slice.call(document.querySelectorAll("[data-deadline]"));
  if (!elements.length) { return; }
  var loaded = Date.now();

  function words(el) {
    var holder = el.closest("[data-countdown-units]") || el;
    var units = (holder.getAttribute("data-countdown-units") || "d h min s").split(" ");
    var now = Date.parse(holder.getAttribute("data-countdown-now") || "");
    return {
      units: units,
      left: holder.getAttribute("data-countdown-left") || "{time} left",
      overdue: holder.getAttribute("data-countdown-overdue") || "overdue by {time}",
      skew: isNaN(now) ? 0 : now - loaded
    };
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function span(seconds, u) {
    var days = Math.floor(seconds / 86400);
    var hours = Math.floor(seconds % 86400 / 3600);
    var minutes = Math.floor(seconds % 3600 / 60);
    var secs = seconds % 60;
    if (days) { return days + " " + u[0] + " " + hours + " " + u[1]; }
    if (hours) { return hours + " " + u[1] + " " + two(minutes) + " " + u[2] + " " + two(secs) + " " + u[3]; }
    return minutes + " " + u[2] + " " + two(secs) + " " + u[3];
  }

  var counters = elements.map(function (el) {
    return { el: el, due: Date.parse(el.getAttribute("data-deadline")), w: words(el) };
  }).filter(function (c) { return !isNaN(c.due); });

  function tick() {
    counters.forEach(function (c) {
      var ms = c.due - (Date.now() + c.w.skew);
      var seconds = Math.floor(Math.abs(ms) / 1000);
      var text = (ms >= 0 ? c.w.left : c.w.overdue).replace("{time}", span(seconds, c.w.units));
      if (c.el.textContent !== text) { c.el.textContent = text; }
      c.el.classList.toggle("overdue", ms < 0);
    });
  }
  tick();
  window.setInterval(tick, 1000);
})();
