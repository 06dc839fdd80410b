// Renders /openapi.json without any third-party code or network access.
(function () {
  "use strict";
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function resolve(doc, schema) {
    if (schema && schema.$ref && schema.$ref.indexOf("#/components/schemas/") === 0) {
      var name = schema.$ref.slice("#/components/schemas/".length);
      return { name: name, schema: (doc.components && doc.components.schemas || {})[name] };
    }
    return { name: null, schema: schema };
  }
  function schemaBlock(doc, media) {
    var r = resolve(doc, media && media.schema);
    if (!r.schema) { return el("span"); }
    return el("div", {}, [
      r.name ? el("div", {}, ["Schema ", el("code", {}, [r.name])]) : el("span"),
      el("pre", {}, [JSON.stringify(r.schema, null, 2)])
    ]);
  }
  function operation(doc, path, method, op) {
    var known = ["get", "post", "put", "patch", "delete"];
    var cls = known.indexOf(method) >= 0 ? method : "other";
    var body = el("div", { "class": "body" }, []);
    if (op.description) { body.appendChild(el("p", {}, [op.description])); }
    (op.parameters || []).forEach(function (p) {
      body.appendChild(el("div", {}, [el("code", {}, [p.name]), " (" + p["in"] + (p.required ? ", required" : "") + ") ", p.description || ""]));
    });
    if (op.requestBody && op.requestBody.content) {
      body.appendChild(el("h4", {}, ["Request body"]));
      Object.keys(op.requestBody.content).forEach(function (type) {
        body.appendChild(el("div", {}, [el("code", {}, [type])]));
        body.appendChild(schemaBlock(doc, op.requestBody.content[type]));
      });
    }
    var rows = [el("tr", {}, [el("th", {}, ["Status"]), el("th", {}, ["Description"]), el("th", {}, ["Content"])])];
    Object.keys(op.responses || {}).sort().forEach(function (code) {
      var res = op.responses[code];
      var content = el("td", {}, []);
      Object.keys(res.content || {}).forEach(function (type) {
        content.appendChild(el("div", {}, [el("code", {}, [type])]));
        content.appendChild(schemaBlock(doc, res.content[type]));
      });
      rows.push(el("tr", {}, [el("td", {}, [code]), el("td", {}, [res.description || ""]), content]));
    });
    body.appendChild(el("h4", {}, ["Responses"]));
    body.appendChild(el("table", {}, rows));
    return el("details", { "class": "op" }, [
      el("summary", {}, [
        el("span", { "class": "method " + cls }, [method.toUpperCase()]),
        el("span", { "class": "path" }, [path]),
        el("span", {}, [op.summary || ""])
      ]),
      body
    ]);
  }
  function render(doc) {
    var info = doc.info || {};
    document.title = (info.title || "API") + " — documentation";
    var title = document.getElementById("title");
    title.textContent = info.title || "API";
    title.appendChild(el("span", { "class": "version" }, [info.version ? "v" + info.version : ""]));
    document.getElementById("description").textContent = info.description || "";
    var main = document.getElementById("operations");
    main.textContent = "";
    Object.keys(doc.paths || {}).sort().forEach(function (path) {
      var item = doc.paths[path];
      ["get", "post", "put", "patch", "delete", "head", "options"].forEach(function (m) {
        if (item[m]) { main.appendChild(operation(doc, path, m, item[m])); }
      });
    });
  }
  fetch("openapi.json", { headers: { "accept": "application/json" } })
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(render)
    .catch(function (e) {
      var main = document.getElementById("operations");
      main.textContent = "";
      main.appendChild(el("p", { "class": "error" }, ["Could not load openapi.json: " + e.message]));
    });
})();
