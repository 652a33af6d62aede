"""The alert agent: an event in context → a validated decision through langchain (Ray-free)."""
