"""blut's Ray launcher: stages as Ray tasks, each under its own kernel memory cap."""
