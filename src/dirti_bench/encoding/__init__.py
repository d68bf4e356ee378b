"""Encoders: the open_clip model factory, streamed image decoding, truncated text encoding,
the on-disk embedding cache and opt-in reduced precision."""
