// Questionnaire answer page: shows and hides items as their enableWhen conditions change
// (the same rules the server applies when it saves; answers on other screens come from the
// saved answers in #q-answers).
(function () {
  "use strict";

  function saved() {
    var node = document.getElementById("q-answers");
    if (!node) return {};
    try { return JSON.parse(node.textContent) || {}; } catch (e) { return {}; }
  }

  function current(form, base) {
    var answers = {};
    Object.keys(base).forEach(function (k) { answers[k] = base[k].slice(); });
    var onPage = {};
    form.querySelectorAll("[name^='q:']").forEach(function (input) {
      var id = input.name.slice(2);
      var item = input.closest("[data-link-id]");
      if (item && item.hidden) { onPage[id] = onPage[id] || []; return; }
      onPage[id] = onPage[id] || [];
      if ((input.type === "radio" || input.type === "checkbox") && !input.checked) return;
      if (input.value.trim() === "") return;
      onPage[id].push(input.value.trim());
    });
    Object.keys(onPage).forEach(function (k) { answers[k] = onPage[k]; });
    return answers;
  }

  function compare(cond, value) {
    var left = value, right = cond.answer;
    if (cond.kind === "boolean") { left = value === "true"; }
    else if (cond.kind === "number") { left = parseFloat(value); right = Number(right); if (isNaN(left)) return false; }
    switch (cond.op) {
      case "=": return left === right;
      case "!=": return left !== right;
      case ">": return left > right;
      case "<": return left < right;
      case ">=": return left >= right;
      case "<=": return left <= right;
    }
    return false;
  }

  function holds(cond, answers) {
    var values = answers[cond.q] || [];
    if (cond.op === "exists") return (values.length > 0) === cond.answer;
    if (cond.op === "!=") return values.every(function (v) { return compare(cond, v); });
    return values.some(function (v) { return compare(cond, v); });
  }

  function update(form, base) {
    // Repeat until stable: hiding an item removes its answers from the conditions of others.
    for (var round = 0; round < 10; round++) {
      var answers = current(form, base);
      var changed = false;
      form.querySelectorAll("[data-enable-when]").forEach(function (item) {
        var rule;
        try { rule = JSON.parse(item.getAttribute("data-enable-when")); } catch (e) { return; }
        var results = rule.when.map(function (c) { return holds(c, answers); });
        var on = rule.behavior === "any" ? results.some(Boolean) : results.every(Boolean);
        if (item.hidden === on) { item.hidden = !on; changed = true; }
      });
      if (!changed) break;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("[data-questionnaire]");
    if (!form) return;
    var base = saved();
    form.addEventListener("change", function () { update(form, base); });
    form.addEventListener("input", function () { update(form, base); });
    update(form, base);
  });
})();
