// Keyboard answers: Y / N, then a digit, then Enter. The digit question is
// disabled while "No" is chosen. No inline scripts: the page's CSP forbids them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("answer");
  if (!form) return;
  const digits = form.querySelector(".digits");
  const update = () => {
    const no = form.querySelector('input[name="is_digit"][value="no"]').checked;
    digits.disabled = no;
    if (no) digits.querySelectorAll("input").forEach((input) => { input.checked = false; });
    digits.querySelectorAll("input").forEach((input) => { input.required = !no; });
  };
  form.addEventListener("change", update);
  update();
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "y" || key === "n") {
      form.querySelector(`input[name="is_digit"][value="${key === "y" ? "yes" : "no"}"]`).checked = true;
      update();
    } else if (/^[0-9]$/.test(key) && !digits.disabled) {
      // A key beyond the study's classes names no choice: nothing happens.
      const choice = form.querySelector(`input[name="digit"][value="${key}"]`);
      if (choice) choice.checked = true;
    } else if (key === "enter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
});
