"""Trimtab's development tools, kept out of the product distribution: the local
cluster (`trimtab cluster`, trimtab_dev.devcluster) and the demo (`trimtab demo`,
trimtab_dev.demo). Installed from a checkout (`make install` installs it editable
beside the product), it adds its commands to the `trimtab` CLI through the
`trimtab.commands` entry point (trimtab_dev.plugin); the product's wheel and image
never carry it. Importing the package loads nothing else: the tests import its
layout before they point the Kubernetes client at their cluster.
"""
