"""Jobs: one module per command, each a settings dataclass and a job function over it (what the command line
runs, callable from Python with the same defaults). The part of the package that may import
``p2g3d.integrations`` and ``p2g3d.training``; nothing in the core imports it."""
