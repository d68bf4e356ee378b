"""dirti-bench: CLIP-family models and prompt engineering on the DIRTI disgust image set.

Data flows one way: stimuli -> label space -> prompts -> encoder (+cache)
-> evaluators -> results -> report / drift check.
"""

__version__ = "0.1.0"
