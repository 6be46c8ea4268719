"""The plate screen's transforms, named by pipelines/*.yml as ``plate_screen_steps:<name>``.

They live in the installed package (``databacked.examples.plate_screen``) so that
``databacked demo --plate-screen`` runs the very same code; copy them here to adapt them.
``measure_site(files, plate, well, site)`` gets a site's channel files (layout path -> local
path) and returns ``{"<plate>/<well>_s<site>.csv": rows}``; ``plate_report(files, plate)``
gets a plate's site tables and returns its ``summary.csv`` and ``plot.png``.
"""

from databacked.examples.plate_screen import measure_site, plate_report

__all__ = ["measure_site", "plate_report"]
