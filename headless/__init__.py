"""Run the pack's workflows without a browser: UI-to-API conversion, overrides, ComfyUI's executor."""
