/* YAML editors (CodeMirror 5): the flow editor with completion from the flow JSON schema and
   validation by the server's validate route (problems marked at their line), the namespace file
   editor, and the plugin-defaults YAML editor. */
(function () {
  "use strict";
  var roost = window.roost;
  var schemaPromise = null;

  function schema() {
    if (!schemaPromise) {
      schemaPromise = fetch("/api/v1/plugins/schemas/flow", {credentials: "same-origin"}).then(function (r) { return r.json(); });
    }
    return schemaPromise;
  }

  function editorFor(textarea, label) {
    return window.CodeMirror.fromTextArea(textarea, {
      mode: "yaml", lineNumbers: true, indentUnit: 2, tabSize: 2, indentWithTabs: false,
      gutters: ["CodeMirror-lint-markers"], screenReaderLabel: label, viewportMargin: Infinity,
      extraKeys: {
        "Ctrl-Space": "autocomplete", "Tab": function (cm) { cm.replaceSelection("  "); },
        "Esc": function (cm) { cm.getInputField().blur(); }  /* keyboard users can leave the editor */
      }
    });
  }

  /* -- completion: the mapping around the cursor decides what is offered ----------------------- */
  function indentOf(line) { var m = /^(\s*)(- )?/.exec(line); return m[1].length + (m[2] ? 2 : 0); }

  function siblingType(cm, lineNo, indent) {
    for (var dir = -1; dir <= 1; dir += 2) {
      for (var n = lineNo + dir; n >= 0 && n < cm.lineCount(); n += dir) {
        var text = cm.getLine(n);
        if (!text.trim() || /^\s*#/.test(text)) continue;
        var ind = indentOf(text);
        if (ind < indent) break;
        if (ind > indent) continue;
        var m = /^\s*(?:- )?type:\s*["']?([\w.]+)/.exec(text);
        if (m) return m[1];
        if (dir === -1 && /^\s*- /.test(text)) break;  /* the item starts here */
      }
    }
    return null;
  }

  function parentKey(cm, lineNo, indent) {
    for (var n = lineNo - 1; n >= 0; n--) {
      var text = cm.getLine(n);
      if (!text.trim()) continue;
      if (indentOf(text) < indent || (/^\s*- /.test(text) && text.search(/\S/) < indent && indentOf(text) <= indent)) {
        var m = /^\s*(?:- )?([\w-]+):/.exec(text);
        if (indentOf(text) < indent) return m ? m[1] : null;
      }
    }
    return null;
  }

  function hint(cm) {
    return schema().then(function (s) {
      var cur = cm.getCursor(), line = cm.getLine(cur.line), before = line.slice(0, cur.ch);
      var defs = s.$defs || {};
      var valueMatch = /^(\s*(?:- )?)type:\s*["']?([\w.]*)$/.exec(before);
      if (valueMatch) {
        var ids = Object.keys(defs).filter(function (k) { return k.indexOf(".") > 0 && defs[k].properties && defs[k].properties.type; });
        var typed = valueMatch[2];
        return {list: ids.filter(function (k) { return k.indexOf(typed) >= 0; }).sort(),
                from: window.CodeMirror.Pos(cur.line, cur.ch - typed.length), to: cur};
      }
      var keyMatch = /^(\s*(?:- )?)([\w-]*)$/.exec(before);
      if (!keyMatch) return null;
      var indent = indentOf(before);
      var props;
      if (indent === 0) {
        props = s.properties || {};
      } else {
        var type = siblingType(cm, cur.line, indent);
        props = type && defs[type] ? defs[type].properties || {} : null;
        if (!props) {
          var parent = parentKey(cm, cur.line, indent);
          props = parent && (parent === "tasks" || parent === "errors" || parent === "finally" || parent === "triggers") ? {id: {}, type: {}} : {};
        }
      }
      var word = keyMatch[2];
      var list = Object.keys(props).filter(function (k) { return k.indexOf(word) === 0; }).sort().map(function (k) {
        var d = props[k] && props[k].description;
        return {text: k + ": ", displayText: k + (d ? "  — " + d.split("\n")[0].slice(0, 60) : "")};
      });
      return {list: list, from: window.CodeMirror.Pos(cur.line, cur.ch - word.length), to: cur};
    });
  }

  /* -- validation through the API: violations become lint marks at their line -------------------- */
  function violationsToMarks(cm, violations) {
    return (violations || []).map(function (v) {
      var line = Math.max(0, Math.min(cm.lineCount() - 1, (v.line || 1) - 1));
      return {from: window.CodeMirror.Pos(line, 0), to: window.CodeMirror.Pos(line, cm.getLine(line).length),
              message: (v.path ? v.path + ": " : "") + v.message, severity: "error"};
    });
  }

  function showProblems(box, violations) {
    box.textContent = "";
    if (!violations || !violations.length) return;
    var title = document.createElement("p");
    title.textContent = violations.length + " problem" + (violations.length > 1 ? "s" : "") + ":";
    var ul = document.createElement("ul");
    violations.forEach(function (v) {
      var li = document.createElement("li");
      li.textContent = (v.line ? "line " + v.line + ": " : "") + (v.path ? v.path + ": " : "") + v.message;
      ul.appendChild(li);
    });
    box.appendChild(title); box.appendChild(ul);
  }

  function flowEditor(form) {
    var tenant = form.dataset.tenant;
    var textarea = form.querySelector("textarea");
    var problems = document.getElementById("problems");
    var cm = editorFor(textarea, "Flow source (YAML)");
    cm.setOption("lint", {
      async: true, delay: 500,
      getAnnotations: function (text, update) {
        roost.api("POST", "/api/v1/" + tenant + "/flows/validate", {body: text, headers: {"Content-Type": "application/x-yaml"}})
          .then(function (results) {
            var vs = [];
            (results || []).forEach(function (r) { vs = vs.concat(r.violations || []); });
            showProblems(problems, vs);
            form.dataset.valid = vs.length ? "false" : "true";
            update(cm, violationsToMarks(cm, vs));
          }).catch(function () { update(cm, []); });
      }
    });
    cm.setOption("hintOptions", {hint: hint, completeSingle: false});
    cm.on("inputRead", function (ed, change) {
      if (change.text[0] && /[\w]/.test(change.text[0])) ed.showHint({hint: hint, completeSingle: false});
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var source = cm.getValue();
      var ns = form.dataset.namespace, id = form.dataset.flowId;
      var method = ns ? "PUT" : "POST";
      var url = "/api/v1/" + tenant + "/flows" + (ns ? "/" + encodeURIComponent(ns) + "/" + encodeURIComponent(id) : "");
      roost.api(method, url, {body: source, headers: {"Content-Type": "application/x-yaml"}}).then(function (flow) {
        roost.notice("Saved revision " + flow.revision + ".");
        window.location.href = "/ui/" + tenant + "/flows/" + encodeURIComponent(flow.namespace) + "/" + encodeURIComponent(flow.id) + "?tab=editor&saved=" + flow.revision;
      }).catch(function (err) {
        var vs = err.data && err.data.violations;
        showProblems(problems, vs || [{message: err.message}]);
        roost.notice("Not saved: " + err.message.split("\n")[0], true);
      });
    });
    window.roost.flowEditor = cm;
  }

  function fileEditor(form) {
    var textarea = form.querySelector("textarea");
    var path = form.dataset.path;
    var yaml = /\.ya?ml$/.test(path);
    var cm = window.CodeMirror.fromTextArea(textarea, {mode: yaml ? "yaml" : null, lineNumbers: true, screenReaderLabel: "Content of " + path, viewportMargin: Infinity});
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = new FormData();
      data.append("fileContent", new Blob([cm.getValue()], {type: "application/octet-stream"}), path.split("/").pop());
      var url = "/api/v1/" + form.dataset.tenant + "/namespaces/" + encodeURIComponent(form.dataset.namespace) + "/files?path=" + encodeURIComponent("/" + path);
      roost.api("POST", url, {body: data}).then(function () { roost.notice("Saved " + path + "."); })
        .catch(function (err) { roost.notice(err.message, true); });
    });
  }

  function defaultsEditor(form) {
    var textarea = form.querySelector("textarea");
    var problems = document.getElementById("pd-problems");
    var cm = editorFor(textarea, "Plugin defaults (YAML)");
    var details = form.closest("details");
    if (details) details.addEventListener("toggle", function () { cm.refresh(); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var url = "/api/v1/" + form.dataset.tenant + "/namespaces/" + encodeURIComponent(form.dataset.namespace) + "/plugindefaults";
      roost.api("PUT", url, {body: cm.getValue(), headers: {"Content-Type": "application/x-yaml"}}).then(function (doc) {
        window.location.href = "?tab=plugindefaults&saved=" + doc.revision;
      }).catch(function (err) {
        var vs = err.data && err.data.violations;
        showProblems(problems, vs || [{message: err.message}]);
        cm.setOption("lint", {getAnnotations: function () { return violationsToMarks(cm, vs || []); }});
      });
    });
  }

  function init() {
    if (!window.CodeMirror) return;
    document.querySelectorAll("form[data-flow-editor]").forEach(flowEditor);
    document.querySelectorAll("form[data-file-editor]").forEach(fileEditor);
    document.querySelectorAll("form[data-defaults-editor]").forEach(defaultsEditor);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
