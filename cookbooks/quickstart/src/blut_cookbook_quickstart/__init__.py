"""The ``quickstart`` cookbook: small recipes that run on a laptop in seconds.

Its hooks are in :mod:`blut_cookbook_quickstart.plugin`, the module its ``blut.cookbooks``
entry point names; the recipes themselves live in their own modules.
"""
