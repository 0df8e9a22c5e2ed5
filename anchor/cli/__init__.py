"""``ler-anchor``: the entry point and one module per command group (loaded only for the
command run).
"""
