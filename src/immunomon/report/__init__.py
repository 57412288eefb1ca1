"""Figures and HTML pages.

``immunomon.report.gate_plots``: one PNG per gate (density of the parent
population with the gate drawn). ``immunomon.report.pages``: the per-sample
HTML page and the index over samples. matplotlib is imported inside the
plotting functions only, so importing this package stays light.
"""
