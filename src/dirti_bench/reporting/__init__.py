"""From results to readers: the report (Markdown/HTML, figures, projection), paired comparisons,
the drift check and the original study's published numbers."""
