// The console works without this script; it only adds a "tick every row" box to the events table.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const boxes = Array.from(document.querySelectorAll('#bulk input[name="id"]'));
  const head = document.querySelector("#bulk thead th");
  if (!boxes.length || !head) return;
  const all = document.createElement("input");
  all.type = "checkbox";
  all.setAttribute("aria-label", "Tick every row");
  all.addEventListener("change", () => boxes.forEach((box) => { box.checked = all.checked; }));
  head.textContent = "";
  head.appendChild(all);
});
