/* Roost UI: small islands over server-rendered pages. Every unsafe request carries the CSRF token. */
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.getAttribute("data-csrf");

  function notice(text, bad) {
    var el = document.getElementById("notice");
    if (!el) return;
    el.textContent = text || "";
    el.className = "notice" + (bad ? " bad" : "");
  }

  /* fetch with the CSRF header; rejects with the API's message */
  function api(method, url, opts) {
    opts = opts || {};
    var headers = Object.assign({"X-CSRF-Token": csrf}, opts.headers || {});
    return fetch(url, {method: method, headers: headers, body: opts.body, credentials: "same-origin"}).then(function (resp) {
      var type = resp.headers.get("content-type") || "";
      var parse = type.indexOf("json") >= 0 ? resp.json() : resp.text();
      return parse.then(function (data) {
        if (!resp.ok) {
          var err = new Error((data && data.message) || ("HTTP " + resp.status));
          err.data = data; err.status = resp.status;
          throw err;
        }
        return data;
      });
    });
  }
  window.roost = {api: api, notice: notice, csrf: csrf};

  /* buttons that call an API route: data-api (method), data-url, data-confirm, data-then, data-follow */
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-api]");
    if (!btn) return;
    var question = btn.getAttribute("data-confirm");
    if (question && !window.confirm(question)) return;
    btn.disabled = true;
    api(btn.getAttribute("data-api"), btn.getAttribute("data-url")).then(function (data) {
      var follow = btn.getAttribute("data-follow");
      var then = btn.getAttribute("data-then");
      if (follow && data && data[follow]) {
        window.location.href = "/ui/" + body.getAttribute("data-tenant") + "/executions/" + data[follow];
      } else if (then) {
        window.location.href = then;
      } else {
        window.location.reload();
      }
    }).catch(function (err) { btn.disabled = false; notice(err.message, true); });
  });

  /* the "Add plugin default" toggle */
  var add = document.getElementById("pd-add");
  if (add) {
    add.addEventListener("click", function () {
      var panel = document.getElementById("pd-new");
      var open = panel.hidden;
      panel.hidden = !open;
      add.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) document.getElementById("pd-type").focus();
    });
  }

  /* upload a namespace file through the API */
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) return;
      var path = form.querySelector("[name=path]").value.trim() || file.name;
      var data = new FormData();
      data.append("fileContent", file, file.name);
      var url = "/api/v1/" + form.dataset.tenant + "/namespaces/" + encodeURIComponent(form.dataset.namespace) + "/files?path=" + encodeURIComponent("/" + path.replace(/^\/+/, ""));
      api("POST", url, {body: data}).then(function () {
        window.location.href = "?tab=files&path=" + encodeURIComponent(path.replace(/^\/+/, ""));
      }).catch(function (err) { notice(err.message, true); });
    });
  });

  /* set a KV pair through the API (typed, with an optional TTL) */
  document.querySelectorAll("form[data-kv]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var key = form.querySelector("[name=key]").value.trim();
      var type = form.querySelector("[name=type]").value;
      var raw = form.querySelector("[name=value]").value;
      var ttl = form.querySelector("[name=ttl]").value.trim();
      var value;
      try {
        if (type === "NUMBER") { value = JSON.stringify(Number(raw)); if (raw.trim() === "" || isNaN(Number(raw))) throw new Error("not a number"); }
        else if (type === "BOOLEAN") { if (raw !== "true" && raw !== "false") throw new Error("expected true or false"); value = raw; }
        else if (type === "JSON") { value = JSON.stringify(JSON.parse(raw)); }
        else { value = JSON.stringify(raw); }
      } catch (e) { notice("Value: " + e.message, true); return; }
      var headers = {"Content-Type": "application/json"};
      if (ttl) headers.ttl = ttl;
      var url = "/api/v1/" + form.dataset.tenant + "/namespaces/" + encodeURIComponent(form.dataset.namespace) + "/kv/" + encodeURIComponent(key);
      api("PUT", url, {body: value, headers: headers}).then(function () { window.location.reload(); })
        .catch(function (err) { notice(err.message, true); });
    });
  });

  /* the log filters: level reloads the tab, search hides lines client-side */
  var level = document.querySelector("[data-reload-level]");
  if (level) {
    level.addEventListener("change", function () {
      var u = new URL(window.location.href);
      u.searchParams.set("tab", "logs"); u.searchParams.set("level", level.value);
      window.location.href = u.toString();
    });
  }
  var search = document.querySelector("[data-log-search]");
  if (search) {
    var apply = function () {
      var q = search.value.toLowerCase();
      document.querySelectorAll("#logs li.log").forEach(function (li) {
        li.hidden = q !== "" && li.textContent.toLowerCase().indexOf(q) < 0;
      });
    };
    search.addEventListener("input", apply);
    window.roost.applyLogSearch = apply;
  }

  /* htmx: show failed requests' messages */
  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    if (xhr.status === 422 || xhr.status === 401) return;  /* forms re-rendered with their errors */
    notice("Request failed (" + xhr.status + ")", true);
  });
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.xhr.status === 422) { ev.detail.shouldSwap = true; ev.detail.isError = false; }
  });
})();
