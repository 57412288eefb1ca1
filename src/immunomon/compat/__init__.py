"""Compatibility layers for scripts written for other flow-cytometry libraries.

``immunomon.compat.fct``: the parts of FlowCytometryTools that scripts use
(``FCMeasurement``, ``FCPlate``, its gates and transforms), so that such a
script runs by changing its import.
"""
