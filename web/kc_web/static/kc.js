/* KundenCenter: progressive enhancement only; every page works without this file. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  ready(function () {
    // Mobile menu: the sidebar collapses behind a button.
    var toggle = document.querySelector(".menu-toggle");
    var sidebar = document.getElementById("sidebar");
    if (toggle && sidebar) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        var open = sidebar.classList.toggle("open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }

    // Selects that change what a list shows submit their form at once.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });

    // A form that orders, pays or changes something is sent once (the server's idempotency
    // key makes a second send harmless anyway).
    document.querySelectorAll("form[data-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
        window.setTimeout(function () {
          form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });

    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });

    // Interstitial pages (payment provider, panel login) go on by themselves.
    var follow = document.querySelector("a[data-follow]");
    if (follow) { window.setTimeout(function () { window.location.replace(follow.href); }, 400); }

    // Show a fieldset only for one value of a select: data-show-when="select-id=value".
    document.querySelectorAll("[data-show-when]").forEach(function (box) {
      var parts = box.dataset.showWhen.split("=");
      var select = document.getElementById(parts[0]);
      if (!select) { return; }
      var update = function () { box.hidden = select.value !== parts[1]; };
      select.addEventListener("change", update);
      update();
    });

    // DNS Modul: one more empty row for a new record.
    var add = document.querySelector("[data-add-row]");
    if (add) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var rows = document.querySelectorAll("tr.new-row");
        var last = rows[rows.length - 1];
        if (!last) { return; }
        var oldKey = last.querySelector("input[name=row]").value;
        var newKey = "n" + (parseInt(oldKey.slice(1), 10) + 1);
        var clone = last.cloneNode(true);
        clone.classList.remove("has-error");
        clone.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
        clone.querySelectorAll("input, select, label").forEach(function (el) {
          ["name", "id", "for"].forEach(function (attr) {
            var v = el.getAttribute(attr);
            if (v) { el.setAttribute(attr, v.split(oldKey).join(newKey)); }
          });
          if (el.name === "row") { el.value = newKey; }
          else if (el.tagName === "INPUT") { el.value = ""; el.removeAttribute("aria-invalid"); }
        });
        last.parentNode.insertBefore(clone, last.nextSibling);
        clone.querySelector("input:not([type=hidden])").focus();
      });
    }
  });
})();
