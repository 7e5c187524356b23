"""Cascade Studio: the Gradio front end of the cascade_core engine (no torch imports here)."""
