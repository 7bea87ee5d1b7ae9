/* The execution page, live: the Gantt refreshes on the API's follow events (debounced: at most once a
   second), logs stream from the logs follow route. Both streams end when the execution ends. */
(function () {
  "use strict";
  var page = document.getElementById("execution");
  if (!page || page.getAttribute("data-terminal") === "true") return;
  var tenant = page.getAttribute("data-tenant");
  var id = page.getAttribute("data-execution");
  var holder = document.getElementById("gantt-holder");
  var logs = document.getElementById("logs");
  var MIN_INTERVAL = 1000;

  if (holder) {
    var last = 0, timer = null, ended = false;
    var refresh = function () {
      timer = null; last = Date.now();
      window.htmx.ajax("GET", holder.getAttribute("data-url"), {target: "#gantt", swap: "outerHTML"});
    };
    var schedule = function () {
      if (timer) return;
      timer = setTimeout(refresh, Math.max(0, MIN_INTERVAL - (Date.now() - last)));
    };
    var source = new EventSource("/api/v1/" + tenant + "/executions/" + id + "/follow");
    source.addEventListener("message", function (ev) {
      var data = JSON.parse(ev.data);
      schedule();
      if (ev.lastEventId === "end") {
        ended = true; source.close();
        setTimeout(function () { window.location.reload(); }, MIN_INTERVAL);  /* final state, actions */
      }
      if (data && data.state && ev.lastEventId === "progress") page.dataset.state = data.state.current;
    });
    source.onerror = function () { if (ended) source.close(); };
  }

  if (logs && logs.getAttribute("data-follow") === "true") {
    var level = logs.getAttribute("data-level") || "INFO";
    var stream = new EventSource("/api/v1/" + tenant + "/logs/" + id + "/follow?minLevel=" + encodeURIComponent(level));
    stream.addEventListener("message", function (ev) {
      if (ev.lastEventId === "end") { stream.close(); return; }
      if (ev.lastEventId !== "progress") return;
      var l = JSON.parse(ev.data);
      var li = document.createElement("li");
      li.className = "log level-" + String(l.level || "").toLowerCase();
      var parts = [["time", (l.timestamp || "").replace("T", " ").slice(0, 19)], ["span.lvl", l.level], ["span.task", l.taskId || ""], ["span.msg", l.message]];
      parts.forEach(function (p, i) {
        var bits = p[0].split(".");
        var el = document.createElement(bits[0]);
        if (bits[1]) el.className = bits[1];
        el.textContent = p[1];
        li.appendChild(el);
        if (i < parts.length - 1) li.appendChild(document.createTextNode(" "));
      });
      logs.appendChild(li);
      if (window.roost.applyLogSearch) window.roost.applyLogSearch();
    });
  }
})();
