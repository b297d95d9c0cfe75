"""blut's built-in plugins: one package per capability, each module with hooks its own entry point."""
