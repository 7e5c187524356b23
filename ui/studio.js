() => {
  // Ctrl+Enter (Cmd+Enter on macOS) generates from anywhere on the page.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      const button = document.querySelector("#generate-btn");
      if (button) { event.preventDefault(); button.click(); }
    }
  });
}
