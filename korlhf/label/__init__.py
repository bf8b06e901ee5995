"""AI feedback in place of human feedback: judges that rank candidate answers."""
