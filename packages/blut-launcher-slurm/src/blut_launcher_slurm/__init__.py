"""blut's Slurm launcher: stages as batch jobs whose ``--mem`` is their kernel memory cap."""
