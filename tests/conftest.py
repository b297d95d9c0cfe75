pytest_plugins = ["blut_core.testing"]
