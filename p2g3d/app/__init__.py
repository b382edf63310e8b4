"""The interactive app (``p2g3d app``): click or draw an object, see it completed, turn it into a 3D model.

:mod:`.callbacks` holds what the app does as plain functions over files and arrays (tested without a browser);
:mod:`.ui` lays it out with Gradio and names the API endpoints; :mod:`p2g3d.jobs.app` serves it.
"""
