"""blut's built-in plugins: one module per capability, each registered as its own entry point."""
