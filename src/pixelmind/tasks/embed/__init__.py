"""The embed task: metric learning, verification and retrieval (:mod:`pixelmind.tasks.embed.task`)."""
