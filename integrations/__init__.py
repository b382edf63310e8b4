"""Adapters around image-to-3D and reconstruction backends (installed as ``p2g3d.integrations``).

One module per backend family, heavy imports inside; backends are found by name through :mod:`.registry`.
"""
