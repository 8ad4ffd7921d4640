"""Task-free building blocks shared by the tasks' models."""
