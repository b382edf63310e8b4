"""Jobs: the demo and benchmark protocols as functions over data. The one part of the package that may import
``p2g3d.integrations``; nothing in the core imports it."""
