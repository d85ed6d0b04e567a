// Herald portal: progressive enhancement only (every page works without it).
// - <time datetime> shown in the viewer's time zone (the UTC value stays in the title);
// - copy buttons; - the recover form sends the viewer's UTC offset.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      if (!el.title) { el.title = el.getAttribute("datetime"); }
      el.textContent = fmt.format(d);
    }
  });
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var input = document.getElementById(btn.getAttribute("data-copy"));
      var status = btn.parentElement.querySelector(".copied");
      var done = function () { if (status) { status.textContent = "Copied"; } };
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });
  // The recovery form: the window is typed in local time; send each end's UTC offset on
  // that date (daylight saving), which the server applies. Without this script: UTC.
  document.querySelectorAll("[data-tz-label]").forEach(function (el) { el.textContent = "(your local time)"; });
  document.querySelectorAll("form[data-local-times]").forEach(function (form) {
    form.addEventListener("submit", function () {
      [["since", "tz_offset"], ["until", "tz_offset_until"]].forEach(function (pair) {
        var input = form.elements[pair[0]], offset = form.elements[pair[1]];
        var d = input && input.value ? new Date(input.value) : new Date();
        if (offset && !isNaN(d.getTime())) { offset.value = String(-d.getTimezoneOffset()); }
      });
    });
  });
});
