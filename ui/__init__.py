"""The Gradio app's tabs, one module each; app.py assembles them.

Dependencies go one way: app -> ui -> serve -> models/common (never train/). Each tab module has a
`build()` that lays out its components inside the current gr.Tab and wires its event with a named
API endpoint, and plain handler functions that tests can also call directly.
"""
