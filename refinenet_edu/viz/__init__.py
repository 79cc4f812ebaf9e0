"""Figures and widgets: training curves, the ablation's charts, the dashboard.

Reads what the engine and the experiments produce; nothing below imports it.
"""
