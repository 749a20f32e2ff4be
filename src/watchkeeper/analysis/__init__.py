"""Analysing a period chunk by chunk against a fitted reference: the chunks, the Timeline."""
