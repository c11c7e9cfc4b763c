// The device list's filters: leave empty fields out of the URL, so that a
// search's address is short enough to read and share. Without this script
// the form still works; its address lists every field.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.devices-filters");
  if (!form) return;
  form.addEventListener("submit", () => {
    for (const field of form.querySelectorAll("input[name], select[name]")) {
      if (field.value === "") field.disabled = true;
    }
  });
  // Back from the results, the fields are editable again.
  window.addEventListener("pageshow", () => {
    for (const field of form.querySelectorAll("[disabled]")) field.disabled = false;
  });
});
