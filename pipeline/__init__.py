"""Running workflows without the browser: UI-format workflows to API prompts, and the headless renderer."""
