"""The traffic simulator behind `revwatch demo`/`revwatch sim`: a model of the business, faults and a sender.

A regular package (not a namespace one) so that setuptools packages it and import-linter can name it as a layer.
"""
