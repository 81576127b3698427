// Optional enhancements: the page reads fully without JavaScript (cells link to their
// outcome tables, drill-downs are <details>). No data is read from here: everything
// shown is already in the (escaped) markup, and nodes are cloned, never parsed as HTML.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var panel = document.getElementById("panel");
  document.querySelectorAll(".js-only[hidden]").forEach(function (el) {
    if (el !== panel) el.hidden = false;
  });

  function openTarget(id) {
    var el = id && document.getElementById(id);
    if (el && el.tagName === "DETAILS") el.open = true;
  }

  function copyText(text, button) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    function done(ok) {
      button.textContent = ok ? "Copied" : "Copy failed: select the text";
      window.setTimeout(function () { button.textContent = label; }, 1600);
    }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  var current = null;
  function closePanel() {
    panel.hidden = true;
    panel.textContent = "";
    if (current) current.classList.remove("selected");
    current = null;
  }
  function openPanel(link) {
    var source = document.getElementById(link.getAttribute("data-panel"));
    if (!source) return false;
    if (current === link) { closePanel(); return true; }
    if (current) current.classList.remove("selected");
    var copy = source.cloneNode(true);
    copy.removeAttribute("id");
    copy.querySelectorAll("[id]").forEach(function (el) { el.removeAttribute("id"); });
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.title = "Close (Esc)";
    close.textContent = "\u00d7";
    close.addEventListener("click", closePanel);
    panel.textContent = "";
    panel.appendChild(close);
    panel.appendChild(copy);
    var wrap = link.closest(".board-wrap");
    wrap.parentNode.insertBefore(panel, wrap.nextSibling);
    panel.hidden = false;
    link.classList.add("selected");
    current = link;
    panel.scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var cell = target.closest("a[data-panel]");
    if (cell) {
      if (openPanel(cell)) event.preventDefault();
      return;
    }
    var button = target.closest("button.copy");
    if (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (source) copyText(source.textContent, button);
      return;
    }
    var action = target.closest("button[data-action]");
    if (action) {
      var open = action.getAttribute("data-action") === "open-all";
      document.querySelectorAll("details.drill").forEach(function (d) { d.open = open; });
      return;
    }
    var link = target.closest("a[href^='#']");
    if (link) openTarget(link.getAttribute("href").slice(1));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && current) closePanel();
  });
  window.addEventListener("hashchange", function () { openTarget(location.hash.slice(1)); });
  if (location.hash) openTarget(location.hash.slice(1));
})();
