"""brainalign.core.tasks: NLU tasks that language models are tuned on (readers, task data)."""
