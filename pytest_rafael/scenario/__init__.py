"""Threat scenarios: the model, the attribute schema shared by the loader,
the strategies and the stressors, the YAML loader and dumper, the catalog, fault
schedules, Hypothesis strategies and the ``rafael scenarios`` commands.

Import from the submodules; this package stays empty so that importing one part
does not pay for the others.
"""
