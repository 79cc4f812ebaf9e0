"""Figures and widgets: training curves, the ablation's charts, the dashboard, the explorables of notebooks 01-05.

Reads what the engine and the experiments produce; nothing below imports it.
"""
