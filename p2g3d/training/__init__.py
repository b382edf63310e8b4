"""Training: synthetic data (:mod:`.composite`, :mod:`.multiview`) and the trainer (:mod:`.trainer`), which drives
one recipe per model family (:mod:`.gestalt`, :mod:`.novel_view`). Imports the core; the core never imports it."""
