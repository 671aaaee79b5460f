"""Built-in tool plugins, each written exactly as a third-party plugin would be.

Holdfast loads every module in this folder through the plugin loader (``runtime.tools.plugins``),
not through this package; see ``docs/plugins.md`` for the guide.
"""
