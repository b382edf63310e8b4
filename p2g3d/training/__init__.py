"""Training: synthetic data in pix2gestalt's format (:mod:`.data`), the trainer (:mod:`.trainer`) and amodal
evaluation (:mod:`.evaluation`). Imports the core; the core never imports it."""
