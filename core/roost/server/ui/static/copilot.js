/* The AI Copilot panel of the flow editor: a prompt (typed or dictated), a model from
   GET /ai/providers, generate (POST /ai/generate/flow with the editor's YAML), a line diff of the
   proposal against the editor, and apply. Dictation uses the browser's speech recognition where it
   exists, else records audio (MediaRecorder) and posts it to the server's transcription route. */
(function () {
  "use strict";

  function el(id) { return document.getElementById(id); }

  /* a line diff (longest common subsequence) as rows of [kind, text]; kind: add, del, ctx */
  function lineDiff(before, after) {
    var a = before.split("\n"), b = after.split("\n");
    if (a.length * b.length > 4000000) {  /* too large to align: show the whole replacement */
      return a.map(function (l) { return ["del", l]; }).concat(b.map(function (l) { return ["add", l]; }));
    }
    var n = a.length, m = b.length, i, j;
    var lcs = [];
    for (i = 0; i <= n; i++) { lcs.push(new Int32Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    var rows = [];
    i = 0; j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { rows.push(["ctx", a[i]]); i++; j++; }
      else if (lcs[i + 1][j] >= lcs[i][j + 1]) { rows.push(["del", a[i]]); i++; }
      else { rows.push(["add", b[j]]); j++; }
    }
    for (; i < n; i++) rows.push(["del", a[i]]);
    for (; j < m; j++) rows.push(["add", b[j]]);
    return rows;
  }

  function showDiff(box, rows) {
    box.textContent = "";
    rows.forEach(function (row) {
      var span = document.createElement("span");
      span.className = row[0];
      span.textContent = (row[0] === "add" ? "+ " : row[0] === "del" ? "- " : "  ") + row[1];
      box.appendChild(span);
    });
  }

  function init(panel) {
    var roost = window.roost;
    var tenant = panel.dataset.tenant;
    var select = el("copilot-model"), prompt = el("copilot-prompt"), status = el("copilot-status");
    var result = el("copilot-result"), diff = el("copilot-diff"), problems = el("copilot-problems");
    var generate = el("copilot-generate"), mic = el("copilot-mic");
    var conversation = "ui-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
    var proposal = null;

    function say(text, bad) {
      status.textContent = text || "";
      status.className = bad ? "error" : "";
    }

    roost.api("GET", "/api/v1/" + tenant + "/ai/providers").then(function (providers) {
      if (!providers || !providers.length) { panel.hidden = true; return; }
      providers.forEach(function (p) {
        var opt = document.createElement("option");
        opt.value = p.id; opt.textContent = p.displayName + (p.isDefault ? " (default)" : "");
        if (p.isDefault) opt.selected = true;
        select.appendChild(opt);
      });
    }).catch(function () { panel.hidden = true; });  /* not permitted or not configured: no panel */

    function editor() { return roost.flowEditor; }

    generate.addEventListener("click", function () {
      var text = prompt.value.trim();
      if (!text) { say("Describe what the flow should do first.", true); prompt.focus(); return; }
      var current = editor() ? editor().getValue() : "";
      var body = {conversationId: conversation, userPrompt: text, yaml: current, providerId: select.value || null};
      if (panel.dataset.namespace) body.namespace = panel.dataset.namespace;
      generate.disabled = true;
      result.hidden = true;
      say("Generating with " + (select.selectedOptions[0] ? select.selectedOptions[0].textContent : "the default model") + "…");
      roost.api("POST", "/api/v1/" + tenant + "/ai/generate/flow", {body: JSON.stringify(body), headers: {"Content-Type": "application/json"}})
        .then(function (yaml) {
          proposal = yaml;
          showDiff(diff, lineDiff(current, yaml));
          problems.textContent = "";
          result.hidden = false;
          say("The proposal validates. Review the changes, then apply them.");
        })
        .catch(function (err) {
          var draft = err.data && err.data.yaml;
          if (err.status === 422 && draft) {
            proposal = draft;
            showDiff(diff, lineDiff(current, draft));
            problems.textContent = "";
            var p = document.createElement("p");
            p.className = "warning";
            p.textContent = "This draft does NOT validate: " + err.message;
            var ul = document.createElement("ul");
            (err.data.violations || []).forEach(function (v) {
              var li = document.createElement("li");
              li.textContent = (v.line ? "line " + v.line + ": " : "") + (v.path ? v.path + ": " : "") + v.message;
              ul.appendChild(li);
            });
            problems.appendChild(p); problems.appendChild(ul);
            result.hidden = false;
          }
          say(err.message, true);
        })
        .then(function () { generate.disabled = false; });
    });

    el("copilot-apply").addEventListener("click", function () {
      if (proposal === null || !editor()) return;
      editor().setValue(proposal);
      result.hidden = true;
      say("Applied to the editor: save to deploy it.");
      editor().focus();
    });
    el("copilot-discard").addEventListener("click", function () {
      proposal = null; result.hidden = true; say("Discarded."); prompt.focus();
    });

    /* -- dictation ------------------------------------------------------------------------------ */
    var Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
    var canRecord = panel.dataset.transcription === "true" && window.MediaRecorder && navigator.mediaDevices &&
      navigator.mediaDevices.getUserMedia;
    if (!Recognition && !canRecord) return;
    mic.hidden = false;
    var active = null;

    function append(text) {
      text = (text || "").trim();
      if (!text) return;
      prompt.value = (prompt.value.trim() ? prompt.value.trim() + " " : "") + text;
    }
    function stopped() { active = null; mic.setAttribute("aria-pressed", "false"); mic.textContent = "Dictate"; }

    mic.addEventListener("click", function () {
      if (active) { active.stop(); return; }
      mic.setAttribute("aria-pressed", "true"); mic.textContent = "Stop dictation";
      if (Recognition) {
        var rec = new Recognition();
        rec.lang = document.documentElement.lang || "en";
        rec.interimResults = false;
        rec.onresult = function (ev) {
          for (var i = ev.resultIndex; i < ev.results.length; i++) append(ev.results[i][0].transcript);
        };
        rec.onerror = function (ev) { say("Dictation failed: " + ev.error, true); };
        rec.onend = stopped;
        active = rec;
        rec.start();
        say("Listening… press Stop dictation when done.");
        return;
      }
      navigator.mediaDevices.getUserMedia({audio: true}).then(function (stream) {
        var chunks = [];
        var recorder = new window.MediaRecorder(stream);
        recorder.ondataavailable = function (ev) { if (ev.data && ev.data.size) chunks.push(ev.data); };
        recorder.onstop = function () {
          stream.getTracks().forEach(function (t) { t.stop(); });
          stopped();
          var type = recorder.mimeType || "audio/webm";
          var data = new FormData();
          data.append("file", new Blob(chunks, {type: type}), "prompt." + (type.indexOf("ogg") >= 0 ? "ogg" : "webm"));
          say("Transcribing…");
          roost.api("POST", "/api/v1/" + tenant + "/ai/transcribe", {body: data}).then(function (r) {
            append(r.text); say("Dictated text added to the prompt."); prompt.focus();
          }).catch(function (err) { say(err.message, true); });
        };
        active = recorder;
        recorder.start();
        say("Recording… press Stop dictation when done.");
      }).catch(function (err) { stopped(); say("No microphone: " + err.message, true); });
    });
  }

  function start() {
    var panel = document.querySelector("[data-copilot]");
    if (panel) init(panel);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
  window.roostCopilot = {lineDiff: lineDiff};
})();
